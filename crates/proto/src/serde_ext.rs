//! How the generated types the REST API serves as they are become JSON, and conversions
//! of `google.protobuf.Timestamp`.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use serde::Serializer;

use crate::video::v1::{VideoStatus, Visibility};

/// A `google.protobuf.Timestamp` of a `DateTime`.
pub fn to_timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// The `DateTime` of a `google.protobuf.Timestamp`, when it is one.
pub fn from_timestamp(t: &Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

/// A time as RFC 3339 (`2026-11-29T22:38:52.123456Z`); `null` when absent.
pub fn timestamp<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t.as_ref().and_then(from_timestamp) {
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        None => s.serialize_none(),
    }
}

/// A video status as its lowercase name (`published`).
pub fn video_status<S: Serializer>(status: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(video_status_name(
        VideoStatus::try_from(*status).unwrap_or(VideoStatus::Unspecified),
    ))
}

pub fn video_status_name(status: VideoStatus) -> &'static str {
    match status {
        VideoStatus::Unspecified => "unspecified",
        VideoStatus::Uploaded => "uploaded",
        VideoStatus::Processing => "processing",
        VideoStatus::Ready => "ready",
        VideoStatus::Failed => "failed",
    }
}

/// A visibility as its lowercase name (`public`).
pub fn visibility<S: Serializer>(visibility: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(visibility_name(
        Visibility::try_from(*visibility).unwrap_or(Visibility::Unspecified),
    ))
}

pub fn visibility_name(visibility: Visibility) -> &'static str {
    match visibility {
        Visibility::Unspecified => "unspecified",
        Visibility::Public => "public",
        Visibility::Unlisted => "unlisted",
        Visibility::Private => "private",
    }
}

/// A video status as the REST API spells it (the OpenAPI document's enum of
/// [`video_status_name`]).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum VideoStatusName {
    Unspecified,
    Uploaded,
    Processing,
    Ready,
    Failed,
}

/// A visibility as the REST API spells it (the OpenAPI document's enum of
/// [`visibility_name`]).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum VisibilityName {
    Unspecified,
    Public,
    Unlisted,
    Private,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_serialise_as_rfc_3339() {
        let t = DateTime::parse_from_rfc3339("2026-11-29T22:38:52.123456Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(from_timestamp(&to_timestamp(t)), Some(t));
        let video = crate::video::v1::Video {
            created_at: Some(to_timestamp(t)),
            status: VideoStatus::Ready as i32,
            visibility: Visibility::Unlisted as i32,
            ..Default::default()
        };
        let json = serde_json::to_value(&video).expect("json");
        assert_eq!(json["created_at"], "2026-11-29T22:38:52.123456Z");
        assert_eq!(json["status"], "ready");
        assert_eq!(json["visibility"], "unlisted");
    }
}
