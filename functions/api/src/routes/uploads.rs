//! `POST /uploads` and `GET /uploads/{id}`: a caller's files for its jobs
//! to read (`jobline_core::files` says how they are sent and kept), and
//! what a submission checks of the uploads its payload names
//! ([`Api::resolve_inputs`]).
//!
//! An upload has no record of its own: its object, under the caller's
//! prefix, carries its declaration, and its id its creation time. So
//! `GET /uploads/{id}` of an id whose object has not arrived answers
//! `pending` while the id's window lasts: an id never issued looks the
//! same, and reveals nothing (the prefix is the caller's own).
//!
//! Each link counts against its caller's upload quota of the UTC day
//! ([`UploadQuota`](jobline_core::caller::UploadQuota), in the callers table), how many and how many bytes
//! declared, before it is made: a refused caller gets `429
//! too_many_uploads` until 00:00 UTC, and no one else is refused.

use crate::error::ApiError;
use crate::identity::caller;
use crate::{Api, fresh_json};
use http::StatusCode;
use http::header::LOCATION;
use jobline_core::JobRecord;
use jobline_core::caller::{until_next_utc_day, utc_day};
use jobline_core::files::{
    Declared, InputFile, MAX_INPUTS, MAX_UPLOAD_BYTES, UPLOAD_URL_TTL, UploadFiles, UploadId,
    keep_days, upload_key,
};
use jobline_core::job::format_ms;
use jobline_core::job_types::reference_upload;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::sync::Arc;

impl Api {
    fn files(&self) -> Result<&Arc<dyn UploadFiles>, ApiError> {
        self.files.as_ref().ok_or(ApiError::UploadsDisabled)
    }

    /// `POST /uploads`: declares a file and answers `201` with a presigned
    /// `PUT` that stores exactly it.
    pub(crate) async fn create_upload(
        &self,
        request: &Request,
    ) -> Result<Response<Body>, ApiError> {
        let owner = caller(request, self.allow_anonymous, self.assumed_role_owner)?;
        let files = self.files()?;
        let declared = declaration(request.body().as_ref())?;
        let now = self.clock.now_ms();
        self.count_upload(&owner, &declared, now).await?;
        let id = UploadId::new(now);
        let put = files
            .presign_upload(&upload_key(&owner, id), &declared, UPLOAD_URL_TTL)
            .await?;
        let mut body = upload_view(id, "pending", Some(&declared));
        body["statusUrl"] = json!(format!("{}/uploads/{id}", self.public_base(request)));
        body["upload"] = json!({
            "method": "PUT",
            "url": put.url,
            "headers": put.headers.into_iter().map(|(name, value)| (name, json!(value))).collect::<serde_json::Map<String, Value>>(),
            "expiresAt": format_ms(put.expires_at_ms),
        });
        let location = body["statusUrl"].as_str().unwrap_or_default().to_owned();
        fresh_json(StatusCode::CREATED)
            .header(LOCATION, location)
            .body(Body::from(body.to_string()))
            .map_err(ApiError::internal)
    }

    /// Counts an upload of `declared` against `owner`'s quota of the UTC
    /// day of `now`: 413 if it alone is over the day's bytes, 429
    /// `too_many_uploads` if the day has no room left for it.
    async fn count_upload(
        &self,
        owner: &str,
        declared: &Declared,
        now: i64,
    ) -> Result<(), ApiError> {
        let (Some(counts), Some(quota)) = (&self.counts, self.caller_limits.upload_quota(owner))
        else {
            return Ok(());
        };
        if declared.size > quota.bytes {
            return Err(ApiError::UploadTooLarge {
                size: declared.size,
                limit: quota.bytes,
            });
        }
        match counts
            .allow_upload(owner, utc_day(now), declared.size, quota)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::TooManyUploads {
                quota,
                retry_after_secs: u32::try_from((until_next_utc_day(now) + 999) / 1000)
                    .unwrap_or(u32::MAX),
            }),
            Err(error) => Err(ApiError::StoreUnavailable(error.to_string())),
        }
    }

    /// `GET /uploads/{id}`: `complete` once its bytes are there, `pending`
    /// before, `expired` once no job may name it.
    pub(crate) async fn show_upload(
        &self,
        request: &Request,
        id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let owner = caller(request, self.allow_anonymous, self.assumed_role_owner)?;
        let files = self.files()?;
        let id: UploadId = id.parse().map_err(|_| ApiError::UploadNotFound)?;
        let open = self.clock.now_ms() <= id.usable_until();
        let object = files.head(&upload_key(&owner, id)).await?;
        let body = match (object, open) {
            (Some(object), _) => upload_view(
                id,
                if open { "complete" } else { "expired" },
                object.declared().as_ref(),
            ),
            (None, true) => upload_view(id, "pending", None),
            (None, false) => return Err(ApiError::UploadNotFound),
        };
        fresh_json(StatusCode::OK)
            .body(Body::from(body.to_string()))
            .map_err(ApiError::internal)
    }

    /// Checks each upload `job`'s payload names (`payload.input`, and each
    /// of `payload.inputs`): the caller's, within its window, complete and
    /// as declared; keeps each as long as the job's record; and records
    /// them on the job, with the ETag the worker will read them by.
    pub(crate) async fn resolve_inputs(&self, mut job: JobRecord) -> Result<JobRecord, ApiError> {
        let ids = input_references(&job.payload)?;
        if ids.is_empty() {
            return Ok(job);
        }
        let files = self.files()?;
        let now = self.clock.now_ms();
        for id in ids {
            let upload = id.to_string();
            if now > id.usable_until() {
                return Err(ApiError::InputExpired { upload });
            }
            let key = upload_key(&job.owner, id);
            let object = files
                .head(&key)
                .await?
                .ok_or_else(|| ApiError::InputNotFound {
                    upload: upload.clone(),
                })?;
            let declared = object
                .declared()
                .filter(|declared| object.matches(declared))
                .ok_or_else(|| ApiError::InputMismatch {
                    upload: upload.clone(),
                })?;
            files
                .keep(&key, keep_days(id.created_ms(), job.expires_at, None))
                .await?;
            job.inputs.push(InputFile {
                upload_id: id,
                key,
                etag: object.etag,
                size: declared.size,
                content_type: declared.content_type,
                sha256: declared.sha256,
            });
        }
        Ok(job)
    }
}

/// An upload as `POST` and `GET /uploads` show it.
fn upload_view(id: UploadId, status: &str, declared: Option<&Declared>) -> Value {
    json!({
        "uploadId": id,
        "status": status,
        "size": declared.map(|d| d.size),
        "contentType": declared.map(|d| d.content_type.as_str()),
        "sha256": declared.map(|d| d.sha256.as_str()),
        "createdAt": format_ms(id.created_ms()),
        "expiresAt": format_ms(id.usable_until()),
    })
}

/// The declaration in a `POST /uploads` body.
fn declaration(body: &[u8]) -> Result<Declared, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let invalid = |field: &'static str, message: &str| ApiError::InvalidUpload {
        field,
        message: message.to_owned(),
    };
    let object = value
        .as_object()
        .ok_or_else(|| invalid("body", "the body must be a JSON object"))?;
    if let Some(unknown) = object
        .keys()
        .find(|key| !["size", "contentType", "sha256"].contains(&key.as_str()))
    {
        return Err(ApiError::InvalidRequest(format!(
            "unknown field `{unknown}`: an upload declares `size`, `contentType` and `sha256`"
        )));
    }
    let size = object
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("size", "size must be the file's size in bytes"))?;
    if size > MAX_UPLOAD_BYTES {
        return Err(ApiError::UploadTooLarge {
            size,
            limit: MAX_UPLOAD_BYTES,
        });
    }
    let text = |field: &'static str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| invalid(field, &format!("{field} is required, as a string")))
    };
    let declared = Declared {
        size,
        content_type: text("contentType")?,
        sha256: text("sha256")?,
    };
    declared
        .check()
        .map_err(|(field, message)| ApiError::InvalidUpload { field, message })?;
    Ok(declared)
}

/// The uploads a payload names: `payload.input` and each of
/// `payload.inputs`, each `{"upload": "<id>"}`; at most [`MAX_INPUTS`],
/// each once.
pub(crate) fn input_references(payload: &Value) -> Result<Vec<UploadId>, ApiError> {
    let invalid =
        |field: &str, error: String| ApiError::InvalidPayload(format!("{field}: {error}"));
    let mut ids = Vec::new();
    if let Some(input) = payload.get("input") {
        ids.push(reference_upload(input).map_err(|e| invalid("payload.input", e))?);
    }
    match payload.get("inputs") {
        None => {}
        Some(Value::Array(inputs)) => {
            for (index, input) in inputs.iter().enumerate() {
                let field = format!("payload.inputs[{index}]");
                ids.push(reference_upload(input).map_err(|e| invalid(&field, e))?);
            }
        }
        Some(_) => {
            return Err(invalid(
                "payload.inputs",
                "must be an array of {\"upload\": \"<upload id>\"}".to_owned(),
            ));
        }
    }
    ids.sort_by_key(ToString::to_string);
    ids.dedup();
    if ids.len() > MAX_INPUTS {
        return Err(invalid(
            "payload",
            format!("a job may name at most {MAX_INPUTS} uploads"),
        ));
    }
    Ok(ids)
}
