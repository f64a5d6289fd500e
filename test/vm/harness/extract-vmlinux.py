#!/usr/bin/env python3
"""Extract the ELF vmlinux from an x86 bzImage, for PVH boot (`qemu -kernel vmlinux`).

Under TCG the bzImage's own xz decompressor costs about 5 s per boot; the ELF boots at once.
The compressed payload's position comes from the boot protocol header (>= 2.08):
payload_offset at 0x248 and payload_length at 0x24c, relative to the protected-mode code,
which starts after (setup_sects + 1) * 512 bytes. Usage: extract-vmlinux.py BZIMAGE OUT
"""
import lzma
import struct
import sys
import zlib


def main(source: str, target: str) -> None:
    with open(source, "rb") as f:
        image = f.read()
    if image[0x202:0x206] != b"HdrS":
        sys.exit(f"{source}: not a bzImage (no HdrS boot header)")
    (protocol,) = struct.unpack_from("<H", image, 0x206)
    if protocol < 0x208:
        sys.exit(f"{source}: boot protocol {protocol:#x} has no payload fields (need >= 0x208)")
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    payload = image[(setup_sects + 1) * 512 + offset:][:length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        # The kernel appends its size after the stream: decompress one stream, ignore the rest.
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        elf = zlib.decompressobj(wbits=31).decompress(payload)
    else:
        sys.exit(f"{source}: unsupported payload compression (magic {payload[:6].hex()})")
    if not elf.startswith(b"\x7fELF"):
        sys.exit(f"{source}: decompressed payload is not an ELF image")
    with open(target, "wb") as f:
        f.write(elf)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: extract-vmlinux.py BZIMAGE OUT")
    main(sys.argv[1], sys.argv[2])
