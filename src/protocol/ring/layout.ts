/**
 * Where each field of a frame lies: the header, then one table per message payload. Every encoder
 * and decoder (the backend's and the frontend's hot paths included) takes its offsets from here;
 * docs/protocol.md states the same tables and test/unit/protocol-doc.test.ts holds the two together.
 * Header offsets count from the frame's start, payload offsets from the payload's (HEADER_SIZE on).
 * All fields are little-endian.
 */
import { HEADER_SIZE } from './messages.js';

/** magic u32 (MAGIC), length u32 (whole frame), type u16, flags u16, id u32 (0 in events). */
export const FRAME_HEADER = { magic: 0, length: 4, type: 8, flags: 10, id: 12 } as const;

/** ConfigRead and ConfigWrite: address u32 (packed), offset u16, size u8, reserved u8 (0), value u32 (writes). */
export const CONFIG_TARGET = { address: 0, offset: 4, size: 6, reserved: 7, value: 8 } as const;
export const CONFIG_READ_LENGTH = 8;
export const CONFIG_WRITE_LENGTH = 12;

/** ConfigReadBlock: address u32 (packed), offset u16, length u16 (1..MAX_CONFIG_BLOCK). */
export const CONFIG_BLOCK = { address: 0, offset: 4, length: 6 } as const;
export const CONFIG_BLOCK_LENGTH = 8;

/** BarRead and BarWrite: address u32, bar u8, size u8, reserved u16 (0), offset u64, value u64 (writes). */
export const BAR_TARGET = { address: 0, bar: 4, size: 5, reserved: 6, offset: 8, value: 16 } as const;
export const BAR_READ_LENGTH = 16;
export const BAR_WRITE_LENGTH = 24;

/** ConfigRead reply: value u32. BarRead reply: value u64. */
export const CONFIG_READ_REPLY_LENGTH = 4;
export const BAR_READ_REPLY_LENGTH = 8;

/** Error reply: code u16 (ErrorCode), reserved u16 (0), errno i32, then the UTF-8 message. */
export const ERROR_PAYLOAD = { code: 0, reserved: 2, errno: 4, message: 8 } as const;

/** DeviceRemoved event: address u32 (packed). */
export const DEVICE_REMOVED_LENGTH = 4;

/**
 * A ConfigRead counted from the frame's start: the backend's hot path reads the fields in place
 * from a frame of exactly `frameLength` bytes instead of decoding a Request object.
 */
export const CONFIG_READ_FRAME = {
  frameLength: HEADER_SIZE + CONFIG_READ_LENGTH,
  address: HEADER_SIZE + CONFIG_TARGET.address,
  offset: HEADER_SIZE + CONFIG_TARGET.offset,
  size: HEADER_SIZE + CONFIG_TARGET.size,
} as const;

/** A ConfigRead reply counted from the frame's start (the frontend's hot path). */
export const CONFIG_READ_REPLY_FRAME = {
  frameLength: HEADER_SIZE + CONFIG_READ_REPLY_LENGTH,
  value: HEADER_SIZE,
} as const;
