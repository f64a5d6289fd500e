/**
 * The stream limits docs/protocol.md states, in one place (test/unit/protocol-doc.test.ts checks
 * the doc against these). Frame-size and ring-depth constants are part of the handshake and live
 * with the message definitions (messages.ts).
 */

/** Longest ConfigReadBlock: a whole PCIe extended config space in one request. */
export const MAX_CONFIG_BLOCK = 4096;

/** Longest error text in UTF-8 bytes: error texts are diagnostics, not a data channel. */
export const MAX_ERROR_MESSAGE = 1024;

/** Garbage tolerated without a single valid frame before a backend declares the stream untrustworthy. */
export const MAX_GARBAGE = 1024 * 1024;

/**
 * A partial frame idle this long is dropped: a peer that died mid-frame on a virtio-serial port
 * leaves its tail in the stream, and the next frontend's Hello must not be swallowed by it.
 */
export const PARTIAL_FRAME_TIMEOUT_MS = 2000;

/**
 * How long a frontend waits for a Hello reply before each attempt is given up: the first entry for
 * the first Hello, and so on. After the first second the gaps are longer than
 * PARTIAL_FRAME_TIMEOUT_MS, so a Hello swallowed by a dead predecessor's partial frame is followed
 * by one the backend frames correctly.
 */
export const HELLO_TIMEOUTS_MS: readonly number[] = [1000, 2500, 2500];

/**
 * A connection that has not completed a Hello this long after connecting gives way to the next
 * frontend that connects (a silent peer must not lock everyone out). Alone it may stay open: the
 * host end of a virtio-serial port connects long before its guest frontend says Hello.
 */
export const HELLO_DEADLINE_MS = 5000;

/** A session that has sent nothing this long gives way to the next frontend that connects. */
export const IDLE_YIELD_MS = 60_000;

/**
 * Replies (and events) a backend keeps for a frontend that does not read them; past this the
 * connection is closed. The backend also stops reading a frontend whose replies back up, so only
 * a peer that keeps writing while never reading gets here.
 */
export const MAX_UNREAD_REPLY_BYTES = 4 * 1024 * 1024;
