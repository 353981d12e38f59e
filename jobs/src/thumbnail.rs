//! `thumbnail`: scales an uploaded JPEG, PNG or WebP image down to one to
//! four sizes (the longest side of each thumbnail, the aspect ratio kept,
//! upright by the image's EXIF orientation), and writes each as an output
//! (`thumb-<size>.png`, `.jpg` or `.webp`).
//!
//! An image must be decoded whole, so the upload is read into memory, and
//! everything that a hostile file could make large is bounded before it is
//! allocated: the upload's declared size ([`MAX_INPUT_BYTES`], checked
//! before a byte is read), then the dimensions its header declares
//! ([`MAX_PIXELS`], [`MAX_SIDE`], checked before the pixels are decoded;
//! `image`'s [`Limits`] refuse them again, and bound what the decoders
//! allocate besides). So a PNG that declares 100,000 × 100,000 pixels fails
//! at once, having allocated nothing for them. [`PEAK_MEMORY_BYTES`] says
//! what one run takes at most, and why.
//!
//! Decoding, scaling and encoding run in `spawn_blocking`, one step at a
//! time: the decode (with the largest thumbnail), then each thumbnail's
//! encoding, the attempt's stop signal checked between them. Every error is
//! a fixed text: none quotes the file.

use async_trait::async_trait;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::metadata::Orientation;
use image::{
    DynamicImage, GenericImageView, GrayImage, ImageDecoder, ImageError, ImageFormat, ImageReader,
    Limits, Luma, Rgb, RgbImage, Rgba,
};
use jobline_core::files::InputFile;
use jobline_core::job_types::{JobContext, JobError, JobHandler, payload_field, reference_upload};
use serde_json::{Value, json};
use std::io::Cursor;

const MIB: u64 = 1024 * 1024;

/// The largest upload read: it is held whole while it is decoded.
pub const MAX_INPUT_BYTES: u64 = 8 * MIB;

/// The most pixels an image may have: 2048 × 1536 (3 Mi), about 3 megapixels.
/// Set by the memory a run may take ([`PEAK_MEMORY_BYTES`]), not by the codecs.
pub const MAX_PIXELS: u64 = 2048 * 1536;

/// The longest side an image may have (a long strip within [`MAX_PIXELS`]).
pub const MAX_SIDE: u32 = 8192;

/// The sizes (longest sides, in pixels) a thumbnail may have.
pub const MIN_SIZE: u32 = 16;
pub const MAX_SIZE: u32 = 2048;

/// The most thumbnails one job makes.
pub const MAX_SIZES: usize = 4;

/// The sizes made when the payload names none.
pub const DEFAULT_SIZES: [u32; 2] = [128, 512];

/// The JPEG encoder's quality (1 to 100).
const JPEG_QUALITY: u8 = 85;

/// The most a decoder holds per pixel, its output included: a progressive
/// JPEG keeps every component's coefficients (2 bytes a sample, four
/// components for CMYK: 8) besides its 3-byte RGB output; a 16-bit RGBA PNG
/// is 8 bytes a pixel; an animated WebP's first frame holds the frame, the
/// canvas and the output (4 each).
pub const DECODE_BYTES_PER_PIXEL: u64 = 12;

/// The largest decoded image (16-bit RGBA at [`MAX_PIXELS`]): `image`'s
/// `max_alloc`, which also bounds what the PNG decoder allocates for its
/// metadata chunks.
const MAX_DECODED_BYTES: u64 = 8 * MAX_PIXELS;

/// The most one thumbnail's encoding holds per pixel of it: the thumbnail
/// (RGBA, 4), the WebP encoder's RGBA copy of it (4), and the encoded bytes
/// twice, in the encoder and in the output (at most 4.5 each: lossless WebP
/// spends at most 9 bits a sample; PNG's deflate and a quality-85 JPEG less).
pub const ENCODE_BYTES_PER_PIXEL: u64 = 17;

/// What a run holds besides: the decoders' row buffers and tables (rows of
/// at most [`MAX_SIDE`] pixels), the input's chunk in flight, the blocking
/// thread's stack.
pub const WORKING_BYTES: u64 = 4 * MIB;

const fn max(a: u64, b: u64) -> u64 {
    if a > b { a } else { b }
}

const fn min(a: u64, b: u64) -> u64 {
    if a < b { a } else { b }
}

/// The most memory one run takes (56 MiB), the largest of its phases plus
/// [`WORKING_BYTES`]; each phase frees what the next does not need:
///
/// - decoding: the input twice (the JPEG decoder copies it; the WebP one
///   reads a lossy frame's data out of it) and the decoder's buffers at
///   [`DECODE_BYTES_PER_PIXEL`] × [`MAX_PIXELS`]: 2 × 8 + 12 × 3 = 52 MiB;
/// - bringing a 16-bit or transparent image to the 8-bit one the output
///   format takes: the decoded image (8 bytes a pixel at most) and its
///   conversion (4), the input freed: 36 MiB;
/// - the largest thumbnail scaled from that (or rotated upright): both
///   images at 4 bytes a pixel: 24 MiB;
/// - each thumbnail's encoding at [`ENCODE_BYTES_PER_PIXEL`], the image it
///   was scaled from freed (each is scaled from the next larger one), at
///   most [`MAX_PIXELS`] (an image is never enlarged) and
///   [`MAX_SIZE`]² pixels: 17 × 3 = 51 MiB;
/// - writing it: the thumbnail, its bytes and the output's copy of one part
///   of them: less.
///
/// The worker runs at most `(function memory − 48 MiB) / 56 MiB` of them at
/// once: 8 in the 512 MB worker; the bounds above are set to fit that.
/// Larger images need a larger function and larger bounds (all four grow
/// with [`MAX_PIXELS`]).
pub const PEAK_MEMORY_BYTES: u64 = max(
    2 * MAX_INPUT_BYTES + DECODE_BYTES_PER_PIXEL * MAX_PIXELS,
    ENCODE_BYTES_PER_PIXEL * min(MAX_PIXELS, MAX_SIZE as u64 * MAX_SIZE as u64),
) + WORKING_BYTES;

const NOT_AN_IMAGE: &str = "the input is not a JPEG, PNG or WebP image";
const UNDECODABLE: &str =
    "the image could not be decoded: it is damaged, truncated or of a kind not supported";

/// `{"input": {"upload": "<id>"}, "sizes": [128, 512], "format": "png"}` →
/// `{"width", "height", "format", "thumbnails": [{"size", "name", "width",
/// "height", "bytes"}]}`, a thumbnail per size in the payload's order, each
/// written as output `thumb-<size>.<ext>`.
///
/// `sizes` (1 to 4 distinct sizes from [`MIN_SIZE`] to [`MAX_SIZE`];
/// [`DEFAULT_SIZES`] if absent) are the thumbnails' longest sides; an image
/// no larger than a size is re-encoded at its own size, never enlarged.
/// `format` is `png` (the default), `jpeg` (quality 85, transparency laid on
/// white) or `webp` (lossless: `image` encodes no lossy WebP).
#[derive(Debug, Clone, Copy)]
pub struct Thumbnail;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Jpeg,
    WebP,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::WebP => "webp",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::WebP => "webp",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::WebP => "image/webp",
        }
    }
}

/// A payload, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    sizes: Vec<u32>,
    format: Format,
}

impl Request {
    /// Reads a payload; the message names the field at fault, never its value.
    fn parse(payload: &Value) -> Result<Self, String> {
        reference_upload(payload_field(payload, "input")?)
            .map_err(|_| "payload.input must be {\"upload\": \"<upload id>\"}".to_owned())?;
        let sizes = match payload.get("sizes") {
            None => DEFAULT_SIZES.to_vec(),
            Some(sizes) => parse_sizes(sizes)?,
        };
        let format = match payload.get("format") {
            None => Format::Png,
            Some(format) => match format.as_str() {
                Some("png") => Format::Png,
                Some("jpeg") => Format::Jpeg,
                Some("webp") => Format::WebP,
                _ => return Err("payload.format must be \"png\", \"jpeg\" or \"webp\"".to_owned()),
            },
        };
        Ok(Self { sizes, format })
    }
}

fn parse_sizes(sizes: &Value) -> Result<Vec<u32>, String> {
    let wrong = || {
        format!(
            "payload.sizes must be a list of 1 to {MAX_SIZES} sizes, each an integer from {MIN_SIZE} to {MAX_SIZE} (pixels)"
        )
    };
    let list = sizes.as_array().ok_or_else(wrong)?;
    if list.is_empty() || list.len() > MAX_SIZES {
        return Err(wrong());
    }
    let mut parsed = Vec::with_capacity(list.len());
    for size in list {
        let size = size
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (MIN_SIZE..=MAX_SIZE).contains(n))
            .ok_or_else(wrong)?;
        if parsed.contains(&size) {
            return Err("payload.sizes must not name a size twice".to_owned());
        }
        parsed.push(size);
    }
    Ok(parsed)
}

#[async_trait]
impl JobHandler for Thumbnail {
    fn name(&self) -> &str {
        "thumbnail"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        Request::parse(payload).map(drop)
    }

    /// See [`PEAK_MEMORY_BYTES`].
    fn peak_memory_bytes(&self) -> u64 {
        PEAK_MEMORY_BYTES
    }

    fn writes_outputs(&self) -> bool {
        true
    }

    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        let request = Request::parse(&payload).map_err(JobError::Permanent)?;
        let input = ctx.input(&payload["input"])?.clone();
        let bytes = read_input(ctx, &input).await?;
        ctx.progress(0.1, "decoding the image");
        let format = request.format;
        // Largest first: each thumbnail is scaled from the one before, which
        // is then freed (see PEAK_MEMORY_BYTES).
        let mut order: Vec<(usize, u32)> = request.sizes.iter().copied().enumerate().collect();
        order.sort_unstable_by_key(|&(_, size)| std::cmp::Reverse(size));
        let largest = order[0].1;
        let (mut previous, (width, height)) = blocking(move || {
            let (image, orientation) = decode(bytes)?;
            let image = prepare(image, format);
            let (w, h) = image.dimensions();
            let mut largest = shrink(image, fit(w, h, largest));
            largest.apply_orientation(orientation);
            Ok((largest, upright(w, h, orientation)))
        })
        .await?;
        let mut thumbnails = vec![Value::Null; order.len()];
        for (done, &(index, size)) in order.iter().enumerate() {
            if ctx.is_cancelled() {
                // Nothing is kept across invocations (a new attempt writes
                // under its own prefix): the next one starts over.
                return Err(JobError::Continue);
            }
            let dimensions = fit(width, height, size);
            let (thumb, encoded) = blocking(move || {
                let thumb = shrink(previous, dimensions);
                let encoded = encode(&thumb, format)?;
                Ok((thumb, encoded))
            })
            .await?;
            let name = format!("thumb-{size}.{}", format.extension());
            let mut output = ctx.create_output(&name, format.content_type())?;
            output.write(&encoded).await?;
            drop(encoded);
            let written = output.finish().await?;
            thumbnails[index] = json!({
                "size": size,
                "name": written.name,
                "width": thumb.width(),
                "height": thumb.height(),
                "bytes": written.size,
            });
            previous = thumb;
            ctx.progress(
                0.1 + 0.9 * (done + 1) as f64 / order.len() as f64,
                &format!("made {} of {} thumbnails", done + 1, order.len()),
            );
        }
        Ok(json!({
            "width": width,
            "height": height,
            "format": format.name(),
            "thumbnails": thumbnails,
        }))
    }
}

/// The whole upload, refused unread if it declares more than [`MAX_INPUT_BYTES`].
async fn read_input(ctx: &JobContext, input: &InputFile) -> Result<Vec<u8>, JobError> {
    let too_large = |size: u64| {
        JobError::Permanent(format!(
            "the input is {size} bytes; the most is {MAX_INPUT_BYTES}"
        ))
    };
    if input.size > MAX_INPUT_BYTES {
        return Err(too_large(input.size));
    }
    let mut reader = ctx.open_input(input, 0).await?;
    let mut bytes = Vec::with_capacity(usize::try_from(input.size).unwrap_or(0));
    while let Some(chunk) = reader.chunk().await? {
        let size = (bytes.len() + chunk.len()) as u64;
        if size > MAX_INPUT_BYTES {
            return Err(too_large(size));
        }
        bytes.extend_from_slice(&chunk);
        if ctx.is_cancelled() {
            return Err(JobError::Continue);
        }
    }
    Ok(bytes)
}

/// Runs `work` on a blocking thread. A panic in it (a decoder's, on a
/// hostile file) would come back on every try: it fails the job.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => Err(JobError::Permanent(UNDECODABLE.to_owned())),
        Err(_) => Err(JobError::Retryable(
            "the thumbnail task was stopped".to_owned(),
        )),
    }
}

/// `image`'s limits: the sides (checked again after [`check_dimensions`],
/// should a decoder report otherwise) and what a decoder may allocate.
fn limits(sides: bool) -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = sides.then_some(MAX_SIDE);
    limits.max_image_height = sides.then_some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    limits
}

/// Refuses an image larger than [`MAX_PIXELS`] or [`MAX_SIDE`].
fn check_dimensions(width: u32, height: u32) -> Result<(), JobError> {
    let pixels = u64::from(width) * u64::from(height);
    if width > MAX_SIDE || height > MAX_SIDE || pixels > MAX_PIXELS {
        return Err(JobError::Permanent(format!(
            "the image is {width}×{height} pixels; the most is {MAX_PIXELS} pixels (2048×1536), and {MAX_SIDE} on a side"
        )));
    }
    Ok(())
}

/// Decodes `bytes` (a JPEG, PNG or WebP image, told by its first bytes,
/// whatever the upload's content type), after checking the dimensions its
/// header declares: the image and its EXIF orientation.
fn decode(bytes: Vec<u8>) -> Result<(DynamicImage, Orientation), JobError> {
    let not_an_image = || JobError::Permanent(NOT_AN_IMAGE.to_owned());
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| not_an_image())?;
    if !matches!(
        reader.format(),
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)
    ) {
        return Err(not_an_image());
    }
    // No limit on the sides yet, so that the error can say what they are.
    reader.limits(limits(false));
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height)?;
    decoder.set_limits(limits(true)).map_err(undecodable)?;
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        return Err(JobError::Permanent(UNDECODABLE.to_owned()));
    }
    // Orientation is best effort: unreadable EXIF leaves the image as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    Ok((image, orientation))
}

fn undecodable(error: ImageError) -> JobError {
    match error {
        ImageError::Limits(_) => JobError::Permanent(format!(
            "the image needs more than {MAX_DECODED_BYTES} bytes to decode"
        )),
        _ => JobError::Permanent(UNDECODABLE.to_owned()),
    }
}

/// `image` as 8-bit samples in a layout `format` encodes: JPEG takes gray
/// or RGB, so transparency is laid on white; PNG and WebP keep it. (A
/// thumbnail needs no 16-bit samples, and they would double its memory.)
fn prepare(image: DynamicImage, format: Format) -> DynamicImage {
    use DynamicImage as D;
    let gray = !image.color().has_color();
    match (format, image) {
        (_, image @ (D::ImageLuma8(_) | D::ImageRgb8(_))) => image,
        (Format::Png | Format::WebP, image @ (D::ImageLumaA8(_) | D::ImageRgba8(_))) => image,
        (_, image) if !image.color().has_alpha() && gray => D::ImageLuma8(image.to_luma8()),
        (_, image) if !image.color().has_alpha() => D::ImageRgb8(image.to_rgb8()),
        (Format::Jpeg, image) if gray => {
            D::ImageLuma8(GrayImage::from_fn(image.width(), image.height(), |x, y| {
                Luma([on_white(image.get_pixel(x, y))[0]])
            }))
        }
        (Format::Jpeg, image) => {
            D::ImageRgb8(RgbImage::from_fn(image.width(), image.height(), |x, y| {
                Rgb(on_white(image.get_pixel(x, y)))
            }))
        }
        (_, image) if gray => D::ImageLumaA8(image.to_luma_alpha8()),
        (_, image) => D::ImageRgba8(image.to_rgba8()),
    }
}

/// A pixel laid on white.
fn on_white(Rgba([r, g, b, a]): Rgba<u8>) -> [u8; 3] {
    let alpha = u32::from(a);
    let blend = |c: u8| {
        let value = (u32::from(c) * alpha + 255 * (255 - alpha) + 127) / 255;
        u8::try_from(value).unwrap_or(u8::MAX)
    };
    [blend(r), blend(g), blend(b)]
}

/// The dimensions of a `width`×`height` image's thumbnail of `size`: its
/// longest side `size`, the aspect ratio kept (the shorter side rounded, at
/// least 1); the image's own if it is no larger.
fn fit(width: u32, height: u32, size: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= size {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled = (u64::from(side) * u64::from(size) + u64::from(long) / 2) / u64::from(long);
        u32::try_from(scaled).unwrap_or(size).clamp(1, size)
    };
    (scale(width), scale(height))
}

/// The dimensions of a `width`×`height` image once turned by `orientation`.
fn upright(width: u32, height: u32, orientation: Orientation) -> (u32, u32) {
    match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    }
}

/// `image` scaled down to `width`×`height` (area averaging: every pixel
/// of the image counts, which suits any reduction), or itself if it is
/// that size already. `image` is freed once the thumbnail is made.
fn shrink(image: DynamicImage, (width, height): (u32, u32)) -> DynamicImage {
    if image.dimensions() == (width, height) {
        image
    } else {
        image.thumbnail_exact(width, height)
    }
}

/// `image` encoded as `format`.
fn encode(image: &DynamicImage, format: Format) -> Result<Vec<u8>, JobError> {
    // Room for the largest encoding at once, so the buffer is never copied
    // to grow (pages never written cost no memory).
    let raw = image.as_bytes().len();
    let mut out = Vec::with_capacity(raw + raw / 8 + 64 * 1024);
    let written = match format {
        Format::Png => image.write_with_encoder(PngEncoder::new_with_quality(
            &mut out,
            CompressionType::Default,
            FilterType::Adaptive,
        )),
        Format::Jpeg => {
            image.write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))
        }
        Format::WebP => image.write_with_encoder(WebPEncoder::new_lossless(&mut out)),
    };
    written.map_err(|_| JobError::Permanent("a thumbnail could not be encoded".to_owned()))?;
    Ok(out)
}

#[cfg(test)]
mod tests;
