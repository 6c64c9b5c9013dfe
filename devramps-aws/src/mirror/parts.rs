//! S3's multipart copy: `CreateMultipartUpload`, one `UploadPartCopy` per byte range,
//! `CompleteMultipartUpload`; any failure aborts the upload (`AbortMultipartUpload`) so no
//! parts are left behind, and returns the first error.

use std::collections::HashMap;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use devramps_core::{Error, Result};

use super::aws::AwsMirror;
use crate::stage::classify;

/// S3's most parts in one upload.
const MAX_PARTS: u64 = 10_000;

/// The `x-amz-copy-source` of `bucket`/`key`: the key percent-encoded (its `/` kept).
pub(super) fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = format!("{bucket}/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The part size for `size` bytes: the mirror's, grown to stay within 10,000 parts.
fn part_size(wanted: u64, size: u64) -> u64 {
    wanted.max(size.div_ceil(MAX_PARTS))
}

/// Copies `source` (`size` bytes) to `destination` in parts, with `metadata` and
/// `content_type` on the new object. `what` names the destination in errors.
#[allow(clippy::too_many_arguments)]
pub(super) async fn copy(
    m: &AwsMirror,
    client: &aws_sdk_s3::Client,
    source: (&str, &str),
    destination: (&str, &str),
    size: u64,
    content_type: Option<&str>,
    metadata: HashMap<String, String>,
    what: &str,
) -> Result<()> {
    let (bucket, key) = destination;
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .set_content_type(content_type.map(str::to_owned))
        .set_metadata(Some(metadata))
        .send()
        .await
        .map_err(|e| classify("s3", "CreateMultipartUpload").error(e, what))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| crate::stage::incomplete("s3", "CreateMultipartUpload", "upload id"))?
        .to_owned();
    let parts = upload_parts(m, client, source, destination, size, &upload_id, what).await;
    let completed = match parts {
        Ok(parts) => client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("s3", "CompleteMultipartUpload").error(e, what)),
        Err(e) => Err(e),
    };
    if let Err(e) = completed {
        // The parts would otherwise be kept (and billed) until a lifecycle rule drops them.
        let _ = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
        return Err(e);
    }
    Ok(())
}

async fn upload_parts(
    m: &AwsMirror,
    client: &aws_sdk_s3::Client,
    source: (&str, &str),
    destination: (&str, &str),
    size: u64,
    upload_id: &str,
    what: &str,
) -> Result<Vec<CompletedPart>> {
    let step = part_size(m.part_size, size);
    let copy_source = copy_source(source.0, source.1);
    let mut parts = Vec::new();
    let mut start = 0;
    let mut number = 1;
    while start < size {
        let end = (start + step).min(size) - 1;
        let out = client
            .upload_part_copy()
            .bucket(destination.0)
            .key(destination.1)
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(&copy_source)
            .copy_source_range(format!("bytes={start}-{end}"))
            .send()
            .await
            .map_err(|e| {
                classify("s3", "UploadPartCopy").error(
                    e,
                    &format!("part {number} (bytes {start}-{end}) of s3://{copy_source} to {what}"),
                )
            })?;
        let etag = out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .ok_or_else(|| {
                Error::backend(
                    "s3",
                    format!("UploadPartCopy part {number} to {what}"),
                    "the answer has no ETag",
                )
            })?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(etag)
                .build(),
        );
        start = end + 1;
        number += 1;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_are_encoded_and_parts_bounded() {
        assert_eq!(copy_source("b", "a/b c+d.zip"), "b/a/b%20c%2Bd.zip");
        assert_eq!(part_size(5 << 20, 10 << 20), 5 << 20);
        assert_eq!(part_size(5 << 20, 100_000 * (5 << 20)), 10 * (5 << 20));
    }
}
