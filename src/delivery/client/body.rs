//! Reading a receiver's response body without trusting its size: the attempt log keeps the
//! first 64 KiB, and a receiver streaming gigabytes cannot tie up a worker or its memory.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::classify::{classify_error, ErrorKind};

/// Bytes of a response body kept for the attempt log.
pub const MAX_KEPT_BODY: usize = 64 * 1024;

/// Bytes read (kept or discarded) before giving up on a body. Reading a modest remainder
/// lets the connection go back to the keep-alive pool; past this, dropping the connection is
/// cheaper than draining it.
pub const MAX_DRAINED_BODY: usize = 1024 * 1024;

/// A response body as far as it was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CappedBody {
    /// The first bytes of the body, at most [`MAX_KEPT_BODY`].
    pub bytes: Vec<u8>,
    /// The body had more bytes than were kept (or than were read, if reading stopped at
    /// [`MAX_DRAINED_BODY`]).
    pub truncated: bool,
    /// Reading failed part-way (e.g. the total timeout hit); the status is still valid.
    pub error: Option<ErrorKind>,
}

/// Reads `body`, keeping the first [`MAX_KEPT_BODY`] bytes and reading no more than
/// [`MAX_DRAINED_BODY`] in total, until `deadline` (the attempt's). Never fails: a broken
/// or late body is recorded, not raised, because the response status already decided the
/// attempt.
pub(super) async fn read_capped(mut incoming: Incoming, deadline: Instant) -> CappedBody {
    let mut body = CappedBody::default();
    let mut read = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, incoming.frame()).await {
            Err(_elapsed) => {
                body.error = Some(ErrorKind::Timeout);
                return body;
            }
            Ok(None) => return body,
            Ok(Some(Err(err))) => {
                body.error = Some(classify_error(&err));
                return body;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing the log keeps.
        let Ok(chunk) = frame.into_data() else { continue };
        read = read.saturating_add(chunk.len());
        let room = MAX_KEPT_BODY - body.bytes.len();
        body.bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            body.truncated = true;
        }
        if read >= MAX_DRAINED_BODY {
            // Whatever remains is unknown; assume more and stop reading.
            body.truncated = true;
            return body;
        }
    }
}
