//! The SNS query protocol's parameter parsing: form decoding, flattened maps
//! and message attributes. No input panics; what is encoded comes back.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use roost_api::sns::{message_attributes, Params};

fn encode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Keys shaped like the flattened structures the API reads, plus noise.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            0u32..14,
            prop_oneof![Just("key"), Just("value"), Just("other"), Just("")]
        )
            .prop_map(|(n, f)| format!("Attributes.entry.{n}.{f}")),
        (
            0u32..14,
            prop_oneof![
                Just("Name"),
                Just("Value.DataType"),
                Just("Value.StringValue"),
                Just("Value.BinaryValue"),
            ]
        )
            .prop_map(|(n, f)| format!("MessageAttributes.entry.{n}.{f}")),
        "Attributes\\.entry\\.[0-9a-z.]{0,8}",
        ".{0,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("String".to_string()),
        Just("Number.int".to_string()),
        Just("Binary".to_string()),
        Just("String.Array".to_string()),
        Just("QUJD".to_string()),
        "[A-Za-z0-9_.-]{0,10}",
        ".{0,16}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(text in ".{0,200}") {
        if let Ok(params) = Params::parse(&text) {
            let _ = params.map("Attributes");
            let _ = message_attributes(&params);
        }
    }

    #[test]
    fn encoded_pairs_come_back(pairs in prop::collection::vec((".{0,12}", ".{0,12}"), 0..8)) {
        let params = Params::parse(&encode(&pairs)).unwrap();
        for (k, _) in &pairs {
            // The first pair with a key is the one read.
            let first = pairs.iter().find(|(k2, _)| k2 == k).map(|(_, v)| v.as_str());
            prop_assert_eq!(params.get(k), first);
        }
    }

    #[test]
    fn structured_parameters_are_checked_not_trusted(
        pairs in prop::collection::vec((key(), value()), 0..24),
    ) {
        let params = Params::parse(&encode(&pairs)).unwrap();
        if let Ok(map) = params.map("Attributes") {
            prop_assert!(map.len() <= pairs.len());
        }
        if let Ok(attributes) = message_attributes(&params) {
            prop_assert!(attributes.len() <= 10);
            for (name, attribute) in &attributes {
                prop_assert!(!name.is_empty() && name.len() <= 256);
                prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)));
                prop_assert!(!attribute.value.is_empty());
            }
        }
    }
}
