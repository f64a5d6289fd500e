/**
 * `xpci bar` operation syntax: BAR:OFFSET[.b|.w|.l|.q][=VALUE]. BAR is the index 0-5, OFFSET and
 * VALUE are hex (0x optional, as setpci), the width defaults to .l. Errors say what was expected.
 */
import { hex0x } from '../pci/hex.js';

export type BarWidth = 1 | 2 | 4 | 8;

export interface BarOperation {
  text: string;
  bar: number;
  offset: bigint;
  width: BarWidth;
  /** undefined = read */
  value?: bigint;
}

export class BarSpecError extends Error {
  override readonly name = 'BarSpecError';
  /** A malformed BAR operation is bad command-line input: the CLI exits with status 2. */
  readonly exitStatus = 2;
}

const WIDTHS: Record<string, BarWidth> = { b: 1, w: 2, l: 4, q: 8 };
const SYNTAX = 'BAR:OFFSET[.b|.w|.l|.q][=VALUE], e.g. 0:4.l or 2:0x10.q=0x1 (BAR 0-5, OFFSET and VALUE hex)';
const HEX = /^(?:0[xX])?([0-9a-fA-F]{1,16})$/;

export function parseBarOperation(text: string): BarOperation {
  const bad = (problem: string): never => {
    throw new BarSpecError(`BAR operation '${text}': ${problem}; expected ${SYNTAX}`);
  };
  const m = /^([^:=]*):([^.=]*)(?:\.([^=]*))?(?:=(.*))?$/.exec(text);
  if (!m) return bad('missing BAR:OFFSET');
  const [, barText, offsetText, widthText, valueText] = m;
  if (!/^[0-5]$/.test(barText)) bad(`invalid BAR index '${barText}'`);
  const offset = HEX.exec(offsetText);
  if (!offset) bad(`invalid offset '${offsetText}'`);
  const width = widthText === undefined ? 4 : WIDTHS[widthText.toLowerCase()];
  if (width === undefined) bad(`invalid width '.${widthText}'`);
  const at = BigInt(`0x${offset![1]}`);
  if (at % BigInt(width) !== 0n) bad(`offset 0x${at.toString(16)} is not aligned to the width (${width} bytes)`);
  const operation: BarOperation = { text, bar: Number(barText), offset: at, width };
  if (valueText !== undefined) {
    const value = HEX.exec(valueText);
    if (!value) bad(`invalid value '${valueText}'`);
    operation.value = BigInt(`0x${value![1]}`);
    if (operation.value >= 1n << BigInt(8 * width)) bad(`value ${valueText} does not fit in ${width} bytes`);
  }
  return operation;
}

/** A BAR value as `xpci bar` prints it: 0x and two hex digits per byte of the width. */
export function formatBarValue(width: BarWidth, value: bigint): string {
  return hex0x(value, width * 2);
}
