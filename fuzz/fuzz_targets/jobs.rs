//! Arbitrary bytes as a device's jobs request and as a job document: the
//! readers must never panic, a request they accept must satisfy the limits
//! they promise, and substituting a document's placeholders must leave
//! valid JSON with none left.
//!
//! Input: the first byte picks the reader; the rest is the payload (or the
//! document).

#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_jobs::document;
use roost_jobs::request::{self, MAX_STATUS_DETAILS};

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(update) = request::update(payload).request {
                let details = update.update.status_details.unwrap_or_default();
                assert!(details.len() <= MAX_STATUS_DETAILS);
            }
        }
        1 => {
            let _ = request::start_next(payload);
        }
        2 => {
            let _ = request::describe(payload);
        }
        3 => {
            if let Ok(topic) = std::str::from_utf8(payload) {
                let _ = request::classify(topic);
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(payload) else {
                return;
            };
            if document::check(text).is_ok() {
                let out = document::substitute(text, |o| format!("https://x/{}/{}", o.bucket, o.key))
                    .expect("a checked document substitutes");
                assert!(!out.contains("${aws:iot:s3-presigned-url:"));
                serde_json::from_str::<serde_json::Value>(&out).expect("still JSON");
            }
        }
    }
});
