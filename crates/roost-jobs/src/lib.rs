//! AWS IoT Jobs, the pure part: what a job execution is and how it may
//! change, what a device asks on the reserved jobs topics and what it is
//! answered, and how a job document's presigned-URL placeholders are found
//! and filled in.
//!
//! What this crate is for: deciding. [`Execution`] is one job execution
//! on one thing with its state machine (device updates, start-next,
//! cancel, time-out, removal, retry), each refusal a [`TransitionError`]
//! that names the AWS error code it becomes. [`request`] reads the jobs
//! topics (`$aws/things/{thing}/jobs/...`) and the JSON the device SDKs
//! send on them, as leniently as AWS does (numbers as strings, an empty
//! payload). [`pending`] orders a thing's pending executions and tells
//! when `jobs/notify` and `jobs/notify-next` must be published. [`reply`]
//! builds the accepted, rejected and notification payloads. [`document`]
//! checks job documents and substitutes `${aws:iot:s3-presigned-url:...}`
//! with whatever URL the caller signs.
//!
//! What it must never do: any I/O, read a clock (every time is passed in,
//! in Unix milliseconds), or panic on any input. Storage, timers, the
//! broker and the control plane live outside and call in here.
//!
//! ```
//! use roost_jobs::{Execution, ExecutionStatus, Update};
//!
//! let mut execution = Execution::queued("scan-1", "canary-1", 1, 1_000);
//! assert_eq!(execution.version_number, 1);
//! execution.start(None, None, Some(60), 2_000).unwrap();
//! assert_eq!(execution.status, ExecutionStatus::InProgress);
//! assert_eq!(execution.version_number, 2);
//!
//! let done = Update { status: ExecutionStatus::Succeeded, expected_version: Some(2), ..Update::default() };
//! execution.update(&done, Some(60), 3_000).unwrap();
//! // Terminal: the device can change nothing any more.
//! let again = Update { status: ExecutionStatus::InProgress, ..Update::default() };
//! let refused = execution.update(&again, Some(60), 4_000).unwrap_err();
//! assert_eq!(refused.code().as_str(), "InvalidStateTransition");
//! ```

#![forbid(unsafe_code)]

mod code;
pub mod document;
mod execution;
pub mod job;
pub mod pending;
pub mod reply;
pub mod request;
mod status;

pub use code::ErrorCode;
pub use execution::{Execution, StepTimeout, TransitionError, Update, MINUTE_MS};
pub use status::{ExecutionStatus, JobStatus, TargetSelection};
