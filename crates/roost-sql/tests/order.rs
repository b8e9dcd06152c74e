//! What actions receive, byte for byte: keys in the order AWS writes them
//! (the payload's own order for `*`, then the SELECT's items in the order
//! they are listed) and numbers as they came.

mod support;

use support::{run, V1, V2};

fn text(version: roost_sql::SqlVersion, sql: &str, payload: &str) -> String {
    let output = run(version, sql, payload.as_bytes()).expect("not filtered out");
    String::from_utf8(output.to_bytes().to_vec()).expect("JSON text")
}

#[test]
fn select_star_keeps_the_payloads_key_order() {
    let audit = r#"{"zeta":1,"alpha":"x","nested":{"z":true,"a":[3,2,1]}}"#;
    assert_eq!(text(V1, "SELECT * FROM 'a/b'", audit), audit);
    assert_eq!(text(V2, "SELECT * FROM 'a/b'", audit), audit);
}

#[test]
fn items_follow_the_order_they_are_listed_in() {
    // AWS's documented example: `SELECT *, 15 as speed` puts speed last.
    assert_eq!(
        text(V2, "SELECT *, 15 as speed FROM 'a/b'", r#"{"b":1,"a":2}"#),
        r#"{"b":1,"a":2,"speed":15}"#
    );
    assert_eq!(
        text(
            V2,
            "SELECT a, b, topic() as t FROM 'a/b'",
            r#"{"b":1,"a":2}"#
        ),
        r#"{"a":2,"b":1,"t":"a/b"}"#
    );
    assert_eq!(
        text(V2, "SELECT {'y': 1, 'x': 2} as o FROM 'a/b'", "{}"),
        r#"{"o":{"y":1,"x":2}}"#
    );
}

#[test]
fn decimals_pass_through_exactly() {
    // Inputs a fast float parser rounds to the neighbouring double.
    for n in [
        "2.5399755604823931e92",
        "3.3680158974223890e-268",
        "0.30000000000000004",
    ] {
        let payload = format!(r#"{{"x":{n}}}"#);
        let out: serde_json::Value =
            serde_json::from_str(&text(V2, "SELECT * FROM 'a/b'", &payload)).unwrap();
        let back: f64 = n.parse().unwrap();
        assert_eq!(out["x"].as_f64(), Some(back), "{n}");
    }
}
