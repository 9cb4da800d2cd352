"""Encoded images read the way training and serving read them: sizes from the header before
any pixel is decoded, a pixel cap, then TensorFlow's decoder (8 bits per channel, RGB).

One implementation in TensorFlow ops for the three places that take image files: the exported
``serving_default`` signature (it runs in TF Serving, so no Python), folder datasets (inside
``tf.data``) and ``keras-classics visualize --image``. A small PNG can decode to gigabytes
(zlib), and a GIF's logical screen says nothing of its frames: giflib reads every frame, each
at its own size, before TensorFlow returns the first. So a GIF's frame descriptors are walked
(a ``tf.while_loop`` over its blocks) and the pixels of all its frames counted.

EXIF orientation is not applied (TensorFlow's decoder ignores it): training, serving and
``visualize`` see the same stored pixels.
"""
import tensorflow as tf

MAGIC = {"JPEG": b"\xff\xd8\xff", "PNG": b"\x89PNG", "GIF": b"GIF8", "BMP": b"BM"}
MAX_PIXELS = 50_000_000  # default cap: a 50-megapixel photo (150 MB decoded)
_PAD = 32


def _uint(data, offset, size, big_endian):
    """The unsigned integer of ``size`` bytes at ``offset`` of a scalar string, as int64."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, size), tf.uint8), tf.int64)
    order = range(size) if big_endian else range(size - 1, -1, -1)
    value = tf.constant(0, tf.int64)
    for i in order:
        value = value * 256 + raw[i]
    return value


def _color_table(flags):
    """Bytes of the colour table announced by a GIF screen or image descriptor's flags."""
    return tf.where(flags >= 128, 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64),
                                                            flags % 8), 0)


def gif_frames(data):
    """``(frames, largest height, largest width, pixels of all frames)`` of a GIF, from its
    image descriptors (GIF89a spec, section 20), walking the extension and image-data
    sub-blocks between them without decoding. At most one step per byte of the file."""
    b = tf.cast(tf.io.decode_raw(data + tf.constant(b"\0" * _PAD), tf.uint8), tf.int64)
    n = tf.size(b, out_type=tf.int64) - _PAD

    def byte(i):
        return tf.gather(b, tf.minimum(tf.cast(i, tf.int64), n + _PAD - 1))

    def u16(i):
        return byte(i) + 256 * byte(i + 1)

    def body(pos, in_blocks, frames, height, width, pixels, done):
        c = byte(pos)
        # inside a chain of data sub-blocks: a length byte, then that many bytes; 0 ends it
        sub_pos, sub_more = pos + 1 + c, c > 0
        # between blocks: 0x21 extension (label, sub-blocks), 0x2C image (descriptor, local
        # colour table, LZW code size, sub-blocks), anything else (0x3B trailer) ends
        image, ext = c == 0x2C, c == 0x21
        h, w = u16(pos + 7), u16(pos + 5)
        top_pos = tf.where(ext, pos + 2, pos + 11 + _color_table(byte(pos + 9)))
        new = tf.logical_and(tf.logical_not(in_blocks), image)
        return (tf.where(in_blocks, sub_pos, top_pos),
                tf.where(in_blocks, sub_more, True),
                frames + tf.cast(new, tf.int64),
                tf.where(new, tf.maximum(height, h), height),
                tf.where(new, tf.maximum(width, w), width),
                pixels + tf.where(new, h * w, 0),
                tf.logical_and(tf.logical_not(in_blocks), tf.logical_not(image | ext)))

    zero = tf.constant(0, tf.int64)
    start = 13 + _color_table(byte(10))
    out = tf.while_loop(
        lambda pos, in_blocks, *rest: tf.logical_and(tf.logical_not(rest[-1]), pos < n),
        body, (start, tf.constant(False), zero, zero, zero, zero, tf.constant(False)))
    return out[2], out[3], out[4], out[5]


def header_size(data):
    """``(height, width)`` (int64) of an encoded JPEG, PNG, GIF or BMP, read from its header
    without decoding the pixels: PNG's IHDR, GIF's logical screen or its largest frame, BMP's
    info header (or its old 12-byte core header), JPEG's frame header
    (``tf.io.extract_jpeg_shape``)."""
    return decoded_size(data)[:2]


def decoded_size(data):
    """``[height, width, frames, pixels]`` (int64) of an encoded image: ``pixels`` is what the
    decoder allocates, for a GIF the pixels of every frame (at least its screen's)."""
    padded = data + tf.constant(b"\0" * _PAD)  # short inputs parse as 0 x 0
    start = tf.strings.substr(data, 0, 3)
    one = tf.constant(1, tf.int64)

    def still(h, w):
        return tf.stack([h, w, one, h * w])

    def bmp():
        core = _uint(padded, 14, 4, False) == 12
        w = tf.where(core, _uint(padded, 18, 2, False), _uint(padded, 18, 4, False))
        h = tf.where(core, _uint(padded, 20, 2, False), _uint(padded, 22, 4, False))
        h = tf.where(h >= 2 ** 31, 2 ** 32 - h, h)  # negative height: a top-down bitmap
        return still(h, w)

    def gif():
        frames, fh, fw, pixels = gif_frames(data)
        h = tf.maximum(_uint(padded, 8, 2, False), fh)
        w = tf.maximum(_uint(padded, 6, 2, False), fw)
        return tf.stack([h, w, frames, tf.maximum(pixels, h * w)])

    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64)
        return still(shape[0], shape[1])

    return tf.case([
        (start == MAGIC["JPEG"], jpeg),
        (start == MAGIC["PNG"][:3],
         lambda: still(_uint(padded, 20, 4, True), _uint(padded, 16, 4, True))),
        (start == MAGIC["GIF"][:3], gif)],
        default=bmp, exclusive=True)


def checked(data, max_pixels=MAX_PIXELS, hint="set at export, --max-pixels"):
    """``data`` once it is known to be a JPEG, PNG, GIF or Windows BMP whose decoding takes at
    most ``max_pixels`` pixels; else an InvalidArgumentError saying which rule it broke. The
    bytes pass through a ``tf.cond`` on the checks (a data dependency, not only a control
    one), so no decoder can see them before the checks have passed."""
    ok = tf.reduce_any([tf.strings.substr(data, 0, len(m)) == m for m in MAGIC.values()])
    size = tf.cond(ok, lambda: decoded_size(data), lambda: tf.zeros([4], tf.int64))
    small = size[3] <= max_pixels
    # TensorFlow's decoder reads only Windows BMPs: an OS/2 one would fail in it with
    # "Number of channels inherent in the image must be 1, 3 or 4, was 351"
    core = tf.logical_and(tf.strings.substr(data, 0, 2) == MAGIC["BMP"],
                          _uint(data + tf.constant(b"\0" * _PAD), 14, 4, False) == 12)

    def refuse():  # the first rule broken raises; nothing is returned
        check = tf.debugging.Assert(ok, [
            "each input must be a JPEG, PNG, GIF or BMP image; got", tf.strings.length(data),
            "bytes starting with", tf.strings.substr(data, 0, 8)])
        with tf.control_dependencies([check]):
            large = tf.debugging.Assert(small, [
                "image too large:", size[0], "x", size[1], "in", size[2], "frame(s) =",
                size[3], f"pixels to decode; at most {max_pixels} pixels are accepted ({hint})"])
        with tf.control_dependencies([large]):
            os2 = tf.debugging.Assert(tf.logical_not(core), [
                "OS/2 bitmaps (12-byte core header) cannot be decoded here; send the image as "
                "PNG, JPEG or a Windows BMP"])
        with tf.control_dependencies([os2]):
            return tf.constant(b"")

    return tf.cond(ok & small & tf.logical_not(core), lambda: tf.identity(data), refuse)


def decode(data, max_pixels=MAX_PIXELS, hint="set at export, --max-pixels"):
    """The first frame of an encoded image as uint8 RGB ``[height, width, 3]``, after
    :func:`checked`; 16-bit PNGs are reduced to 8 bits (TensorFlow's ``decode_image``)."""
    return tf.io.decode_image(checked(data, max_pixels, hint), channels=3,
                              expand_animations=False)


def read(path, max_pixels=MAX_PIXELS):
    """An image file decoded as :func:`decode` does (eagerly, for ``visualize``); a
    ValueError naming the file when it is not an image, too large or damaged."""
    try:
        return decode(tf.io.read_file(path), max_pixels, "keras_classics.images.MAX_PIXELS")
    except tf.errors.OpError as err:
        raise ValueError(f"{path}: {reason(err)}") from None


def reason(err):
    """The readable part of a TensorFlow error raised by :func:`checked` (eager or in a
    graph) or by the decoder, on one line."""
    import ast

    text = getattr(err, "message", str(err)).strip()
    if "Summarized data: " in text:  # eager: one item per line, strings as bytes literals
        items = text.split("Summarized data: ", 1)[1].splitlines()
        return " ".join(ast.literal_eval(i).decode() if i.startswith("b'") else i
                        for i in items).strip(" .")
    for line in text.splitlines():
        if line.startswith("assertion failed: ["):  # in a graph: [item] [item] ...
            return line[len("assertion failed: ["):-1].replace("] [", " ").strip(" .")
    return text.splitlines()[0][:300]
