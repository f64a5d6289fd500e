/**
 * The bench's fixture tree: the fuzz fixture (an e1000e-like endpoint and a two-function sibling
 * pair) plus five more endpoints like its main device, so the fixture export holds the eight
 * devices the backend's memory target is stated for.
 */
import { fuzzDeviceSpecs, MAIN_DEVICE } from '../test/support/fuzz-fixture.js';
import { createFixtureTree, type FixtureDeviceSpec, type FixtureTree } from '../test/support/fixture-sysfs.js';

export { MAIN_DEVICE };

/** Devices the fixture backend exports (the RSS target's device count). */
export const FIXTURE_DEVICE_COUNT = 8;

export function benchFixtureSpecs(): FixtureDeviceSpec[] {
  const specs = fuzzDeviceSpecs();
  const main = specs.find((spec) => spec.address === MAIN_DEVICE)!;
  for (let slot = 0x10; specs.length < FIXTURE_DEVICE_COUNT; slot++) {
    specs.push({ ...main, address: `0000:00:${slot.toString(16).padStart(2, '0')}.0`, iommuGroup: slot });
  }
  return specs;
}

export function createBenchFixture(dir: string): { tree: FixtureTree; devices: string[] } {
  const specs = benchFixtureSpecs();
  return { tree: createFixtureTree(specs, dir), devices: specs.map((spec) => spec.address) };
}
