use super::*;
use crate::test_context;
use image::{ImageBuffer, ImageEncoder, RgbaImage};
use jobline_core::files::{Chunks, FileError, InputFile, JobFiles, UploadId, output_key};
use jobline_core::job_types::Reports;
use jobline_testkit::contract::files::declare;
use jobline_testkit::memory::files::{MemoryFiles, context};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A `width`×`height` RGB picture: gradients, so that scaling has work.
fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

fn png(image: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_with_encoder(PngEncoder::new(&mut out)).unwrap();
    out
}

fn jpeg(image: &RgbImage, exif: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, 90);
    if let Some(exif) = exif {
        encoder.set_exif_metadata(exif).unwrap();
    }
    encoder
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// Runs the job on `body` with `extra` payload fields (the upload says it
/// is a PNG whatever it is: the job goes by the bytes).
async fn run(body: &[u8], extra: Value) -> (Result<Value, JobError>, Arc<MemoryFiles>, JobContext) {
    let files = Arc::new(MemoryFiles::new());
    let input = files.upload("alice", body, "image/png").await;
    let ctx = context(&files, vec![input.clone()], CancellationToken::new());
    let mut payload = json!({"input": {"upload": input.upload_id}});
    for (key, value) in extra.as_object().unwrap() {
        payload[key] = value.clone();
    }
    let result = Thumbnail.run(&ctx, payload).await;
    (result, files, ctx)
}

/// Output `name` of the job run in `ctx`, decoded.
fn output(files: &MemoryFiles, ctx: &JobContext, name: &str) -> (DynamicImage, String) {
    let object = files
        .object(&output_key(ctx.job_id, ctx.attempt, name))
        .unwrap_or_else(|| panic!("no output {name}"));
    let image = image::load_from_memory(&object.body).unwrap();
    (image, object.content_type)
}

fn permanent(result: Result<Value, JobError>) -> String {
    match result {
        Err(JobError::Permanent(message)) => message,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_png_gets_a_png_thumbnail_per_size_with_its_aspect_ratio() {
    let source = DynamicImage::ImageRgb8(picture(300, 200));
    let (result, files, ctx) = run(&png(&source), json!({"sizes": [128, 64]})).await;
    let result = result.unwrap();
    assert_eq!(result["width"], 300);
    assert_eq!(result["height"], 200);
    assert_eq!(result["format"], "png");
    let thumbnails = result["thumbnails"].as_array().unwrap();
    assert_eq!(thumbnails.len(), 2);
    // In the payload's order, whatever order they were made in.
    for (thumbnail, (size, width, height)) in thumbnails.iter().zip([(128, 128, 85), (64, 64, 43)])
    {
        let name = format!("thumb-{size}.png");
        assert_eq!(thumbnail["size"], size);
        assert_eq!(thumbnail["name"], name);
        assert_eq!(thumbnail["width"], width);
        assert_eq!(thumbnail["height"], height);
        let (image, content_type) = output(&files, &ctx, &name);
        assert_eq!(content_type, "image/png");
        assert_eq!(image.dimensions(), (width, height));
        let object = files
            .object(&output_key(ctx.job_id, ctx.attempt, &name))
            .unwrap();
        assert_eq!(thumbnail["bytes"], object.body.len());
    }
    // The picture survives the scaling: its dark top-left corner stays dark.
    let (small, _) = output(&files, &ctx, "thumb-64.png");
    let corner = small.get_pixel(0, 0);
    assert!(corner[0] < 16 && corner[1] < 16, "{corner:?}");
}

#[tokio::test]
async fn a_jpeg_gets_the_default_sizes_and_any_format() {
    let body = jpeg(&picture(640, 480), None);
    let (result, files, ctx) = run(&body, json!({})).await;
    let result = result.unwrap();
    assert_eq!(result["format"], "png");
    for (size, dimensions) in [(128, (128, 96)), (512, (512, 384))] {
        let (image, _) = output(&files, &ctx, &format!("thumb-{size}.png"));
        assert_eq!(image.dimensions(), dimensions);
    }

    let (result, files, ctx) = run(&body, json!({"format": "jpeg", "sizes": [200]})).await;
    assert_eq!(result.unwrap()["thumbnails"][0]["name"], "thumb-200.jpg");
    let (image, content_type) = output(&files, &ctx, "thumb-200.jpg");
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(image.dimensions(), (200, 150));

    let (result, files, ctx) = run(&body, json!({"format": "webp", "sizes": [480, 16]})).await;
    assert_eq!(result.unwrap()["format"], "webp");
    let (image, content_type) = output(&files, &ctx, "thumb-480.webp");
    assert_eq!(content_type, "image/webp");
    assert_eq!(image.dimensions(), (480, 360));
    assert_eq!(
        output(&files, &ctx, "thumb-16.webp").0.dimensions(),
        (16, 12)
    );
}

#[tokio::test]
async fn transparency_is_kept_in_png_and_webp_and_laid_on_white_in_jpeg() {
    // A portrait, transparent at the top and opaque black at the bottom.
    let source = RgbaImage::from_fn(60, 100, |_, y| {
        if y < 50 {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([0, 0, 0, 255])
        }
    });
    let body = png(&DynamicImage::ImageRgba8(source));
    for format in ["png", "webp"] {
        let (result, files, ctx) = run(&body, json!({"format": format, "sizes": [50]})).await;
        result.unwrap();
        let (image, _) = output(&files, &ctx, &format!("thumb-50.{format}"));
        assert_eq!(image.dimensions(), (30, 50));
        assert_eq!(image.get_pixel(15, 5)[3], 0, "{format}");
        assert_eq!(image.get_pixel(15, 45)[3], 255, "{format}");
    }
    let (result, files, ctx) = run(&body, json!({"format": "jpeg", "sizes": [50]})).await;
    result.unwrap();
    let (image, _) = output(&files, &ctx, "thumb-50.jpg");
    assert!(image.get_pixel(15, 5)[0] > 240, "white where it was clear");
    assert!(image.get_pixel(15, 45)[0] < 16, "black where it was black");
}

#[tokio::test]
async fn sixteen_bit_and_gray_images_are_thumbnailed_in_eight_bits() {
    let deep = DynamicImage::ImageRgba16(ImageBuffer::from_fn(64, 32, |x, _| {
        Rgba([u16::try_from(x * 1000).unwrap(), 0, 0, 65535])
    }));
    let (result, files, ctx) = run(&png(&deep), json!({"sizes": [32]})).await;
    result.unwrap();
    let (image, _) = output(&files, &ctx, "thumb-32.png");
    assert_eq!(image.color(), image::ColorType::Rgba8);
    assert_eq!(image.dimensions(), (32, 16));

    let gray = DynamicImage::ImageLuma8(GrayImage::from_fn(40, 40, |x, _| Luma([x as u8])));
    let (result, files, ctx) = run(&png(&gray), json!({"sizes": [20], "format": "jpeg"})).await;
    result.unwrap();
    assert_eq!(
        output(&files, &ctx, "thumb-20.jpg").0.dimensions(),
        (20, 20)
    );
}

#[tokio::test]
async fn an_image_smaller_than_a_size_is_never_enlarged() {
    let source = DynamicImage::ImageRgb8(picture(100, 50));
    let (result, files, ctx) = run(&png(&source), json!({"sizes": [2048, 128, 64]})).await;
    let result = result.unwrap();
    let sizes: Vec<(u64, u64)> = result["thumbnails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["width"].as_u64().unwrap(), t["height"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes, [(100, 50), (100, 50), (64, 32)]);
    assert_eq!(
        output(&files, &ctx, "thumb-2048.png").0.dimensions(),
        (100, 50)
    );
}

/// A TIFF-format EXIF block with one entry: the orientation.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut exif = b"II*\0".to_vec();
    exif.extend_from_slice(&8u32.to_le_bytes());
    exif.extend_from_slice(&1u16.to_le_bytes());
    exif.extend_from_slice(&0x0112u16.to_le_bytes());
    exif.extend_from_slice(&3u16.to_le_bytes());
    exif.extend_from_slice(&1u32.to_le_bytes());
    exif.extend_from_slice(&value.to_le_bytes());
    exif.extend_from_slice(&[0, 0]);
    exif.extend_from_slice(&0u32.to_le_bytes());
    exif
}

#[tokio::test]
async fn a_photo_taken_on_its_side_is_thumbnailed_upright() {
    // Stored 80×40, to be shown turned 90° clockwise (EXIF orientation 6).
    let body = jpeg(&picture(80, 40), Some(exif_orientation(6)));
    let (result, files, ctx) = run(&body, json!({"sizes": [40, 20]})).await;
    let result = result.unwrap();
    assert_eq!(
        (result["width"].clone(), result["height"].clone()),
        (json!(40), json!(80))
    );
    let (upright, _) = output(&files, &ctx, "thumb-40.png");
    assert_eq!(upright.dimensions(), (20, 40));
    // Turned clockwise: the stored left edge (dark) is now the top.
    assert!(
        upright.get_pixel(10, 0)[0] < 64,
        "{:?}",
        upright.get_pixel(10, 0)
    );
    assert!(
        upright.get_pixel(10, 39)[0] > 192,
        "{:?}",
        upright.get_pixel(10, 39)
    );
    assert_eq!(
        output(&files, &ctx, "thumb-20.png").0.dimensions(),
        (10, 20)
    );
}

#[test]
fn thumbnails_keep_the_aspect_ratio() {
    assert_eq!(fit(4000, 3000, 512), (512, 384));
    assert_eq!(fit(3000, 4000, 512), (384, 512));
    assert_eq!(fit(10_000, 10, 100), (100, 1), "never a zero side");
    assert_eq!(fit(500, 500, 512), (500, 500));
    assert_eq!(fit(513, 1, 512), (512, 1));
    assert_eq!(upright(3, 2, Orientation::Rotate270FlipH), (2, 3));
    assert_eq!(upright(3, 2, Orientation::FlipVertical), (3, 2));
}

#[test]
fn the_payload_is_checked_field_by_field() {
    let id = UploadId::new(1_800_000_000_000);
    let good = json!({"input": {"upload": id}, "sizes": [16, 2048], "format": "webp"});
    assert_eq!(Thumbnail.validate(&good), Ok(()));
    assert_eq!(
        Request::parse(&json!({"input": {"upload": id}})).unwrap(),
        Request {
            sizes: vec![128, 512],
            format: Format::Png
        }
    );
    for (payload, field) in [
        (json!("x"), "payload must be"),
        (json!({}), "payload.input"),
        (json!({"input": "x"}), "payload.input"),
        (json!({"input": {"upload": "x"}}), "payload.input"),
        (
            json!({"input": {"upload": id}, "sizes": []}),
            "payload.sizes",
        ),
        (
            json!({"input": {"upload": id}, "sizes": 128}),
            "payload.sizes",
        ),
        (
            json!({"input": {"upload": id}, "sizes": [15]}),
            "payload.sizes",
        ),
        (
            json!({"input": {"upload": id}, "sizes": [2049]}),
            "payload.sizes",
        ),
        (
            json!({"input": {"upload": id}, "sizes": [64.5]}),
            "payload.sizes",
        ),
        (
            json!({"input": {"upload": id}, "sizes": [16, 32, 64, 128, 256]}),
            "payload.sizes",
        ),
        (
            json!({"input": {"upload": id}, "sizes": [64, 64]}),
            "payload.sizes",
        ),
        (
            json!({"input": {"upload": id}, "format": "gif"}),
            "payload.format",
        ),
        (
            json!({"input": {"upload": id}, "format": 1}),
            "payload.format",
        ),
    ] {
        let message = Thumbnail.validate(&payload).unwrap_err();
        assert!(message.contains(field), "{payload}: {message}");
        assert!(
            !message.contains("gif") && !message.contains("2049"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn bytes_that_are_not_an_image_fail_for_good() {
    for body in [
        b"name,price\nwidget,3\n".to_vec(),
        b"GIF89a\x01\x00\x01\x00".to_vec(),
        vec![0; 1000],
    ] {
        let (result, ..) = run(&body, json!({})).await;
        assert_eq!(permanent(result), NOT_AN_IMAGE);
    }
}

#[tokio::test]
async fn damaged_images_fail_for_good() {
    let whole = png(&DynamicImage::ImageRgb8(picture(300, 200)));
    let jpeg_whole = jpeg(&picture(300, 200), None);
    for body in [
        whole[..whole.len() / 2].to_vec(),
        whole[..40].to_vec(),
        b"RIFF\x10\0\0\0WEBPVP8 \x04\0\0\0abcd".to_vec(),
        jpeg_whole[..20].to_vec(),
    ] {
        let (result, ..) = run(&body, json!({})).await;
        assert_eq!(permanent(result), UNDECODABLE);
    }
}

/// The CRC-32 of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid 1×1 PNG whose header then declares `width`×`height`, its CRC
/// made right: a decompression bomb's header.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut body = png(&DynamicImage::ImageRgba8(RgbaImage::new(1, 1)));
    assert_eq!(&body[12..16], b"IHDR");
    body[16..20].copy_from_slice(&width.to_be_bytes());
    body[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&body[12..29]);
    body[29..33].copy_from_slice(&crc.to_be_bytes());
    body
}

#[tokio::test]
async fn a_png_declaring_ten_billion_pixels_fails_at_once() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the check value");
    let started = Instant::now();
    let (result, ..) = run(&png_declaring(100_000, 100_000), json!({})).await;
    assert_eq!(
        permanent(result),
        "the image is 100000×100000 pixels; the most is 3145728 pixels (2048×1536), and 8192 on a side"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Within the pixels but not the sides, and the other way round.
    let (result, ..) = run(&png_declaring(9000, 2), json!({})).await;
    assert!(permanent(result).starts_with("the image is 9000×2 pixels"));
    let (result, ..) = run(&png_declaring(2048, 1537), json!({})).await;
    assert!(permanent(result).starts_with("the image is 2048×1537 pixels"));
    // At the bound, the header passes and the (missing) pixels fail.
    let (result, ..) = run(&png_declaring(2048, 1536), json!({})).await;
    assert_eq!(permanent(result), UNDECODABLE);
}

#[tokio::test]
async fn an_input_declared_too_large_fails_unread() {
    let files = Arc::new(MemoryFiles::new());
    let mut input = files.upload("alice", b"x", "image/png").await;
    // Its key holds nothing: reading it would fail as "gone".
    input.key = "uploads/nothing-here".to_owned();
    input.size = MAX_INPUT_BYTES + 1;
    let ctx = context(&files, vec![input.clone()], CancellationToken::new());
    let result = Thumbnail
        .run(&ctx, json!({"input": {"upload": input.upload_id}}))
        .await;
    assert_eq!(
        permanent(result),
        format!(
            "the input is {} bytes; the most is 8388608",
            MAX_INPUT_BYTES + 1
        )
    );
}

#[tokio::test]
async fn a_stopped_attempt_writes_nothing_and_goes_on_later() {
    let files = Arc::new(MemoryFiles::new());
    let body = png(&DynamicImage::ImageRgb8(picture(300, 200)));
    let input = files.upload("alice", &body, "image/png").await;
    let stop = CancellationToken::new();
    stop.cancel();
    let reports = Reports::new();
    let ctx = context(&files, vec![input.clone()], stop).reporting_to(reports.clone());
    let result = Thumbnail
        .run(&ctx, json!({"input": {"upload": input.upload_id}}))
        .await;
    assert_eq!(result, Err(JobError::Continue));
    assert!(
        files
            .object(&output_key(ctx.job_id, ctx.attempt, "thumb-128.png"))
            .is_none()
    );
    assert!(reports.take().checkpoint.is_none(), "it starts over");
}

#[tokio::test]
async fn without_a_bucket_or_the_named_upload_it_fails_for_good() {
    let id = UploadId::new(1_800_000_000_000);
    let payload = json!({"input": {"upload": id}});
    assert!(matches!(
        Thumbnail.run(&test_context(1), payload).await,
        Err(JobError::Permanent(_))
    ));
}

// The worker keeps 48 MiB for its runtime: 8 at once in 512 MB, 1 in 128 MB
// (functions/worker checks the same of every built-in type).
const _: () = assert!((512 - 48) * MIB / PEAK_MEMORY_BYTES >= 8);
const _: () = assert!(48 * MIB + PEAK_MEMORY_BYTES <= 128 * MIB);

#[test]
fn the_type_declares_its_outputs_and_its_peak() {
    assert!(Thumbnail.writes_outputs());
    assert_eq!(Thumbnail.peak_memory_bytes(), 56 * MIB);
}

/// A field of this process's /proc/self/status, in bytes, if there is one.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// A bucket of one upload that makes its chunks as they are read and keeps
/// nothing written to it, so that a run's memory is the handler's own (the
/// fake bucket holds a copy of each read and each output).
#[derive(Debug)]
struct Discard(Arc<Vec<u8>>);

struct Lazy(Arc<Vec<u8>>, usize);

#[async_trait]
impl Chunks for Lazy {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, FileError> {
        let end = (self.1 + 64 * 1024).min(self.0.len());
        let chunk = (self.1 < end).then(|| self.0[self.1..end].to_vec());
        self.1 = end;
        Ok(chunk)
    }
}

#[async_trait]
impl JobFiles for Discard {
    async fn read(&self, _: &str, _: &str, from: u64) -> Result<Box<dyn Chunks>, FileError> {
        Ok(Box::new(Lazy(
            self.0.clone(),
            usize::try_from(from).unwrap(),
        )))
    }
    async fn put(&self, _: &str, _: &str, _: Vec<u8>) -> Result<(), FileError> {
        Ok(())
    }
    async fn start_parts(&self, _: &str, _: &str) -> Result<String, FileError> {
        Ok("parts".to_owned())
    }
    async fn put_part(&self, _: &str, _: &str, _: i32, _: Vec<u8>) -> Result<String, FileError> {
        Ok("etag".to_owned())
    }
    async fn complete_parts(&self, _: &str, _: &str, _: &[String]) -> Result<(), FileError> {
        Ok(())
    }
    async fn abort_parts(&self, _: &str, _: &str) -> Result<(), FileError> {
        Ok(())
    }
}

const MEASURED_INPUT: &str = "THUMBNAIL_MEASURED_INPUT";
const MEASURED_FORMAT: &str = "THUMBNAIL_MEASURED_FORMAT";

/// Run by [`a_run_stays_within_its_declared_peak`] alone in a process of
/// its own: runs the job on the file `THUMBNAIL_MEASURED_INPUT` names, at
/// the four largest sizes, and prints how far its resident memory grew.
#[test]
#[ignore = "run alone in its own process, by a_run_stays_within_its_declared_peak"]
fn measure_one_run() {
    let (Ok(path), Ok(format)) = (
        std::env::var(MEASURED_INPUT),
        std::env::var(MEASURED_FORMAT),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body = std::fs::read(path).unwrap();
    let declared = declare(&body, "image/png");
    let id = UploadId::new(1_800_000_000_000);
    let input = InputFile {
        upload_id: id,
        key: String::new(),
        etag: String::new(),
        size: declared.size,
        content_type: declared.content_type,
        sha256: declared.sha256,
    };
    let ctx = JobContext::new(
        jobline_core::JobId::random(),
        1,
        i64::MAX,
        CancellationToken::new(),
    )
    .with_files(Arc::new(Discard(Arc::new(body))), vec![input]);
    let payload =
        json!({"input": {"upload": id}, "sizes": [2048, 1024, 512, 128], "format": format});
    // Resets the high-water mark to the resident memory now.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_bytes("VmRSS:").unwrap();
    runtime.block_on(Thumbnail.run(&ctx, payload)).unwrap();
    let peak = status_bytes("VmHWM:").unwrap();
    println!("grew {} bytes", peak - before);
}

/// The largest images within the limits, run each in a process of its own
/// ([`measure_one_run`]): the resident memory a run adds stays within
/// [`PEAK_MEMORY_BYTES`]. (A progressive CMYK JPEG, which `image` cannot
/// write, measured 43 MiB at 7.5 MB; a lossy WebP with transparency to PNG,
/// 46 MiB.)
#[test]
fn a_run_stays_within_its_declared_peak() {
    if status_bytes("VmHWM:").is_none() || std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("no /proc/self/clear_refs here: not measured");
        return;
    }
    let (width, height) = (2048, 1536);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed.to_le_bytes()
    };
    // The fast encoder with one filter (the adaptive one tries five a row).
    let png = |image: DynamicImage, filter| {
        let mut out = Vec::new();
        let encoder = PngEncoder::new_with_quality(&mut out, CompressionType::Fast, filter);
        image.write_with_encoder(encoder).unwrap();
        out
    };
    // 16 bits a sample: 24 MiB decoded, 12 MiB once made 8-bit (a colour
    // a row, which compresses to little).
    let deep = png(
        DynamicImage::ImageRgba16(ImageBuffer::from_fn(width, height, |_, y| {
            let y = u16::try_from(y).unwrap();
            Rgba([y * 41, y * 13, 65535 - y * 7, 65535])
        })),
        FilterType::Sub,
    );
    // Noise in as many rows as the input bound takes (the fast encoder
    // spends about 11 bits a byte of noise), transparency below: the
    // largest thumbnails to encode.
    let noisy_rows =
        u32::try_from((MAX_INPUT_BYTES - MIB) * 8 / 11 / (u64::from(width) * 4)).unwrap();
    let noisy = png(
        DynamicImage::ImageRgba8(RgbaImage::from_fn(width, height, |_, y| {
            let [r, g, b, a, ..] = noise();
            Rgba(if y < noisy_rows { [r, g, b, a] } else { [0; 4] })
        })),
        FilterType::NoFilter,
    );
    let photo = jpeg(
        &RgbImage::from_fn(width, height, |_, _| {
            let [r, g, b, ..] = noise();
            Rgb([r, g, b])
        }),
        None,
    );
    let dir = std::env::temp_dir().join(format!("jobline-thumbnail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One process each, all at once (each measures only itself).
    let runs: Vec<_> = [
        ("deep.png", &deep, "webp"),
        ("noisy.png", &noisy, "webp"),
        ("photo.jpg", &photo, "png"),
    ]
    .into_iter()
    .map(|(name, body, format)| {
        assert!(
            body.len() as u64 <= MAX_INPUT_BYTES,
            "{name}: {}",
            body.len()
        );
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "thumbnail::tests::measure_one_run",
                "--ignored",
                "--nocapture",
            ])
            .env(MEASURED_INPUT, &path)
            .env(MEASURED_FORMAT, format)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        (name, body.len(), format, child)
    })
    .collect();
    for (name, size, format, child) in runs {
        let run = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success(), "{name}: {stdout}");
        let grew: u64 = stdout
            .split("grew ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {stdout}"));
        eprintln!(
            "{name} ({size} bytes) to {format}: {:.1} MiB",
            grew as f64 / MIB as f64
        );
        assert!(
            grew <= PEAK_MEMORY_BYTES,
            "{name} to {format}: {grew} bytes"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
