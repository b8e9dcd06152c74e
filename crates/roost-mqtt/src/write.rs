//! Writing MQTT's data types (section 1.5).
//!
//! Encoding runs in two passes: sizing, which also checks every field can be
//! expressed (and is the only place that can fail), then writing, which
//! cannot fail. So a refused packet leaves the output buffer untouched.

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;

/// Bytes a Variable Byte Integer of this value takes (values above
/// 268,435,455 are refused before they get here).
pub(crate) fn var_int_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub(crate) fn put_var_int(buf: &mut BytesMut, mut value: u32) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            break;
        }
    }
}

/// Encoded size of a UTF-8 Encoded String, after checking it can be sent.
pub(crate) fn string_len(field: &'static str, text: &str) -> Result<usize, EncodeError> {
    if text.len() > usize::from(u16::MAX) {
        return Err(EncodeError::InvalidField {
            field,
            problem: "longer than 65,535 bytes",
        });
    }
    if text.as_bytes().contains(&0) {
        return Err(EncodeError::InvalidField {
            field,
            problem: "contains U+0000",
        });
    }
    Ok(2 + text.len())
}

/// Encoded size of Binary Data, after checking its length fits.
pub(crate) fn binary_len(field: &'static str, data: &[u8]) -> Result<usize, EncodeError> {
    if data.len() > usize::from(u16::MAX) {
        return Err(EncodeError::InvalidField {
            field,
            problem: "longer than 65,535 bytes",
        });
    }
    Ok(2 + data.len())
}

pub(crate) fn put_string(buf: &mut BytesMut, text: &str) {
    put_binary(buf, text.as_bytes());
}

pub(crate) fn put_binary(buf: &mut BytesMut, data: &[u8]) {
    // Lengths were checked by the sizing pass.
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_int_round_numbers() {
        for (value, expected) in [
            (0u32, &[0x00][..]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            let mut buf = BytesMut::new();
            put_var_int(&mut buf, value);
            assert_eq!(&buf[..], expected);
            assert_eq!(var_int_len(value), expected.len());
        }
    }
}
