//! Everything a video-service use case can fail with, and its one mapping to gRPC.

use platform::database::DbError;
use platform::pagination::InvalidPage;
use tonic::Status;

use crate::domain::InvalidField;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Page(#[from] InvalidPage),
    /// No such video, or one the caller may not see (the same answer for both).
    #[error("no video with id {0}")]
    NotFound(uuid::Uuid),
    /// Only the owner may change or delete a video.
    #[error("only the owner of video {0} may change it")]
    Forbidden(uuid::Uuid),
    #[error("video {0} is not ready to play yet")]
    NotReady(uuid::Uuid),
    #[error("the file is larger than {max} bytes")]
    TooLarge { max: u64 },
    /// Every upload slot is taken (`uploads.max_concurrent`).
    #[error("too many uploads are in progress right now; try again shortly")]
    Busy,
    #[error("the file is not a video this service takes (MP4, QuickTime, WebM or Matroska)")]
    NotAVideo,
    /// The client's stream failed or ended before the upload was whole.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// The object store failed; the upload left nothing behind.
    #[error("the video store is unavailable: {0}")]
    Storage(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// `ErrorInfo` reasons the gateway turns into HTTP statuses of their own.
pub const TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
pub const NOT_READY: &str = "VIDEO_NOT_READY";

impl From<VideoError> for Status {
    fn from(e: VideoError) -> Self {
        let message = e.to_string();
        match e {
            VideoError::Invalid(field) => field.into(),
            VideoError::Page(page) => page.into(),
            VideoError::NotFound(_) => Status::not_found(message),
            VideoError::Forbidden(_) => Status::permission_denied(message),
            VideoError::NotReady(_) => {
                platform::grpc::with_reason(tonic::Code::FailedPrecondition, message, NOT_READY)
            }
            VideoError::TooLarge { .. } => {
                platform::grpc::with_reason(tonic::Code::OutOfRange, message, TOO_LARGE)
            }
            VideoError::NotAVideo => platform::grpc::with_reason(
                tonic::Code::InvalidArgument,
                message,
                UNSUPPORTED_MEDIA_TYPE,
            ),
            VideoError::Interrupted(_) => Status::cancelled(message),
            VideoError::Busy => platform::grpc::overloaded(message, 5),
            VideoError::Storage(e) => {
                tracing::error!(error = %e, "object store failure");
                Status::unavailable("the video store is unavailable; try again shortly")
            }
            VideoError::Db(e) => e.into(),
        }
    }
}
