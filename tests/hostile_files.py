"""Files as a hostile user crafts them, written byte by byte from the formats' specs: small on
disk, huge when decoded."""
import struct
import zlib


def png_of_size(height, width):
    """A valid black RGB PNG of any size, streamed through zlib (a 20000x20000 one is 1 MB)."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + \
            struct.pack(">I", zlib.crc32(kind + payload))

    comp, row = zlib.compressobj(9), b"\0" * (1 + 3 * width)
    pixels = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                0, 0, 0)) + \
        chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def lzw_constant(pixels, min_code=2):
    """GIF's LZW codes of ``pixels`` pixels of colour 0, packed LSB first: runs of 1, 2, 3 ...
    pixels, each the table's newest string, and a clear code when the table is full (the
    code-width rule is giflib's encoder's)."""
    clear, eoi = 1 << min_code, (1 << min_code) + 1
    out, bits = bytearray(), [0, 0]  # pending bits, their count

    def emit(code, width):
        bits[0] |= code << bits[1]
        bits[1] += width
        while bits[1] >= 8:
            out.append(bits[0] & 255)
            bits[0] >>= 8
            bits[1] -= 8

    width = min_code + 1
    emit(clear, width)
    left, run, next_code = pixels, 1, eoi + 1
    while left:
        n = min(run, left)
        emit(0 if n == 1 else eoi + n - 1, width)  # the code of n zeros
        left -= n
        if next_code >= (1 << width) and width < 12:
            width += 1
        if next_code >= 4095:
            emit(clear, width)
            width, run, next_code = min_code + 1, 1, eoi + 1
        else:
            next_code, run = next_code + 1, run + 1
    emit(eoi, width)
    if bits[1]:
        out.append(bits[0] & 255)
    return bytes(out)


def gif_of_frames(screen, frames):
    """A GIF89a whose logical screen is ``screen`` (height, width) and whose frames are
    ``frames`` [(height, width)], all black: valid LZW that giflib and Pillow decode; a
    16000x16000 frame is 174 KB."""
    data = b"GIF89a" + struct.pack("<HHBBB", screen[1], screen[0], 0x80, 0, 0) + \
        b"\0\0\0\xff\xff\xff"  # a global colour table of two colours
    for h, w in frames:
        codes = lzw_constant(h * w)
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02" + b"".join(
            bytes([len(codes[i:i + 255])]) + codes[i:i + 255]
            for i in range(0, len(codes), 255)) + b"\0"
    return data + b"\x3b"
