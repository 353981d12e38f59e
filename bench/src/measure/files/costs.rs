//! What files cost in S3 (issue 23), per GB where it depends on the size:
//! the requests each step makes through `jobline_s3`'s adapter, at
//! [`S3Prices`]. Computed, not measured: the emulator bills nothing.

use crate::pricing::{GB, S3Prices};
use jobline_core::files::PART_BYTES;
use serde::Serialize;

const MIB: u64 = 1024 * 1024;

/// One line of the cost table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    pub item: String,
    /// The S3 requests or usage it is billed for.
    pub billed: String,
    pub usd: f64,
    /// What `usd` is for: per GB, per GB-month, per job…
    pub per: String,
    /// A million of them, for what is billed by the request.
    pub usd_per_million: Option<f64>,
}

/// What files cost in S3, per GB where it depends on the size, from
/// `prices`: the calls each step makes (`jobline_s3`'s adapter).
pub fn costs(prices: &S3Prices) -> Vec<CostLine> {
    let (put, get) = (prices.put(), prices.get());
    let parts_per_gb = (GB / PART_BYTES as f64).ceil();
    let line = |item: &str, billed: String, usd: f64, per: &str| CostLine {
        item: item.to_owned(),
        billed,
        usd,
        per: per.to_owned(),
        usd_per_million: Some(usd * 1e6),
    };
    let by_size = |item: &str, billed: &str, usd: f64, per: &str| CostLine {
        usd_per_million: None,
        ..line(item, billed.to_owned(), usd, per)
    };
    let upload = put;
    let named = 2.0 * get + put;
    let run = get;
    let output = (parts_per_gb + 2.0) * put;
    let listed = put;
    vec![
        line(
            "an upload",
            "1 PutObject (the presigned PUT)".into(),
            upload,
            "upload, 1 B to 5 GB",
        ),
        by_size(
            "sending it in",
            "data transfer in",
            prices.transfer_in_per_gb,
            "GB",
        ),
        by_size(
            "keeping an upload or an output",
            "S3 Standard storage",
            prices.storage_per_gb_month,
            "GB-month",
        ),
        line(
            "a job naming the upload, at submission",
            "1 HeadObject + 1 GetObjectTagging (GET class) + 1 PutObjectTagging (PUT class; only \
             when the job raises its keep tier)"
                .into(),
            named,
            "job",
        ),
        line(
            "a run reading it",
            format!(
                "1 GetObject (a continuation or a rerun adds one); S3 to Lambda in the same region \
                 ${}/GB",
                prices.transfer_to_lambda_per_gb
            ),
            run,
            "run, any size",
        ),
        line(
            "a streamed output",
            format!(
                "1 CreateMultipartUpload + {parts_per_gb} UploadPart (one per {} MiB) + 1 \
                 CompleteMultipartUpload (an output under {} MiB: 1 PutObject)",
                PART_BYTES as u64 / MIB,
                PART_BYTES as u64 / MIB
            ),
            output,
            "GB",
        ),
        line(
            "GET /jobs/{id} of a succeeded job whose type writes outputs",
            "1 ListObjectsV2 (LIST: PUT class); the links are presigned in the API, no request"
                .into(),
            listed,
            "GET",
        ),
        line(
            "a job on a 1 GB upload writing a 1 GB output, read once (requests only)",
            "all of the above but storage".into(),
            upload + named + run + output + listed,
            "job",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gb_of_output_is_130_put_requests_and_a_read_one_get() {
        let costs = costs(&S3Prices::US_EAST_1);
        let usd = |item: &str| costs.iter().find(|c| c.item == item).unwrap().usd;
        assert!((usd("an upload") - 0.000_005).abs() < 1e-12);
        assert!((usd("a streamed output") - 130.0 * 0.000_005).abs() < 1e-12);
        assert!((usd("a job naming the upload, at submission") - 0.000_005_8).abs() < 1e-12);
        assert!((usd("a run reading it") - 0.000_000_4).abs() < 1e-12);
        assert_eq!(usd("keeping an upload or an output"), 0.023);
        let all = 0.000_005 + 0.000_005_8 + 0.000_000_4 + 0.000_65 + 0.000_005;
        assert!((costs.last().unwrap().usd - all).abs() < 1e-12);
    }
}
