//! The results bucket for local runs and tests, with the lifecycle rules
//! `template.yaml` deploys: results and outputs expire with the jobs,
//! uploads by their keep tier (`jobline_core::files`), and unfinished
//! multipart uploads after a day. The emulator stores the rules and acts on
//! none of them; a test holds them to the template's.

use super::{ProvisionError, failed};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter, Tag,
};
use jobline_aws::sdk_error;
use jobline_core::files::{KEEP_TAG, KEEP_TIERS_DAYS};

/// Creates the results bucket `name` (private by default in S3 and moto),
/// unless this account already has it, and sets its lifecycle rules for
/// jobs kept `retention_days`.
pub async fn create_bucket(
    s3: &aws_sdk_s3::Client,
    name: &str,
    retention_days: u32,
) -> Result<(), ProvisionError> {
    match s3.create_bucket().bucket(name).send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
        Err(e) => return Err(failed(name)(sdk_error(e))),
    }
    let rules = lifecycle_rules(retention_days).map_err(|e| failed(name)(e.into()))?;
    let configuration = BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .map_err(|e| failed(name)(e.into()))?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(name)
        .lifecycle_configuration(configuration)
        .send()
        .await
        .map_err(|e| failed(name)(sdk_error(e)))?;
    Ok(())
}

type BuildError = aws_sdk_s3::error::BuildError;

/// The rules: `results/` and `outputs/` expire `retention_days` after they
/// are written; `uploads/` by each keep tier's tag; every prefix aborts an
/// unfinished multipart upload after a day.
pub fn lifecycle_rules(retention_days: u32) -> Result<Vec<LifecycleRule>, BuildError> {
    let days = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let abort = AbortIncompleteMultipartUpload::builder()
        .days_after_initiation(1)
        .build();
    let mut rules = Vec::new();
    for (id, prefix) in [
        ("expire-with-the-jobs", "results/"),
        ("outputs-expire-with-the-jobs", "outputs/"),
    ] {
        rules.push(
            LifecycleRule::builder()
                .id(id)
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
                .expiration(
                    LifecycleExpiration::builder()
                        .days(days(retention_days))
                        .build(),
                )
                .abort_incomplete_multipart_upload(abort.clone())
                .build()?,
        );
    }
    rules.push(
        LifecycleRule::builder()
            .id("uploads-abort-incomplete")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("uploads/").build())
            .abort_incomplete_multipart_upload(abort)
            .build()?,
    );
    for tier in KEEP_TIERS_DAYS {
        let tag = Tag::builder()
            .key(KEEP_TAG)
            .value(tier.to_string())
            .build()?;
        let filter = LifecycleRuleFilter::builder()
            .and(
                LifecycleRuleAndOperator::builder()
                    .prefix("uploads/")
                    .tags(tag)
                    .build(),
            )
            .build();
        rules.push(
            LifecycleRule::builder()
                .id(format!("uploads-keep-{tier}"))
                .status(ExpirationStatus::Enabled)
                .filter(filter)
                .expiration(LifecycleExpiration::builder().days(days(tier)).build())
                .build()?,
        );
    }
    Ok(rules)
}
