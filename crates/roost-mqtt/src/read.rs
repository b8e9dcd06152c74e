//! Reading MQTT's data types (section 1.5) from one complete packet body.
//!
//! The reader only ever sees a body whose length the fixed header announced
//! and the framing already checked, so running out of bytes here means the
//! packet lies about its own fields: Malformed, never "wait for more".

use bytes::Bytes;

use crate::error::{DecodeErrorKind, Malformed};

pub(crate) type Result<T> = std::result::Result<T, DecodeErrorKind>;

/// A cursor over a packet body. Binary fields are returned as slices of the
/// body, sharing its memory.
pub(crate) struct Reader {
    body: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(body: Bytes) -> Self {
        Reader { body, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless every byte of the body was read.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(Malformed::TrailingBytes(left).into()),
        }
    }

    fn take(&mut self, len: usize) -> Result<&[u8]> {
        if self.remaining() < len {
            return Err(Malformed::Truncated.into());
        }
        let start = self.pos;
        self.pos += len;
        Ok(&self.body[start..self.pos])
    }

    /// The next `len` bytes as a shared slice.
    pub(crate) fn bytes(&mut self, len: usize) -> Result<Bytes> {
        if self.remaining() < len {
            return Err(Malformed::Truncated.into());
        }
        let slice = self.body.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(slice)
    }

    /// Everything left, as a shared slice.
    pub(crate) fn rest(&mut self) -> Bytes {
        let slice = self.body.slice(self.pos..);
        self.pos = self.body.len();
        slice
    }

    /// A reader over the next `len` bytes; this reader moves past them.
    pub(crate) fn sub_reader(&mut self, len: usize) -> Result<Reader> {
        Ok(Reader::new(self.bytes(len)?))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A Variable Byte Integer inside a body. Only MQTT 5 has them there
    /// (property lengths, subscription identifiers), and MQTT 5 requires the
    /// shortest encoding.
    pub(crate) fn var_int(&mut self) -> Result<u32> {
        let mut value = 0u32;
        for index in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << (7 * index);
            if byte & 0x80 == 0 {
                if index > 0 && byte == 0 {
                    return Err(Malformed::VarIntNotMinimal.into());
                }
                return Ok(value);
            }
        }
        Err(Malformed::VarIntTooLong.into())
    }

    /// Binary Data: a two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes> {
        let len = self.u16()?;
        self.bytes(usize::from(len))
    }

    /// A UTF-8 Encoded String: well-formed UTF-8 (which excludes the
    /// surrogates U+D800..U+DFFF) without U+0000.
    pub(crate) fn string(&mut self) -> Result<String> {
        let len = self.u16()?;
        let raw = self.take(usize::from(len))?;
        let text = std::str::from_utf8(raw).map_err(|_| Malformed::InvalidUtf8)?;
        if raw.contains(&0) {
            return Err(Malformed::NullCharacter.into());
        }
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8]) -> Reader {
        Reader::new(Bytes::from_static(bytes))
    }

    #[test]
    fn var_int_spec_table() {
        // Table 1-1 of MQTT 5.0: the smallest and largest value of each width.
        let cases: [(&'static [u8], u32); 8] = [
            (&[0x00], 0),
            (&[0x7F], 127),
            (&[0x80, 0x01], 128),
            (&[0xFF, 0x7F], 16_383),
            (&[0x80, 0x80, 0x01], 16_384),
            (&[0xFF, 0xFF, 0x7F], 2_097_151),
            (&[0x80, 0x80, 0x80, 0x01], 2_097_152),
            (&[0xFF, 0xFF, 0xFF, 0x7F], 268_435_455),
        ];
        for (bytes, value) in cases {
            let mut r = reader(bytes);
            assert_eq!(r.var_int().unwrap(), value);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn var_int_refusals() {
        assert_eq!(
            reader(&[0x80, 0x80, 0x80, 0x80, 0x01]).var_int(),
            Err(Malformed::VarIntTooLong.into())
        );
        assert_eq!(
            reader(&[0x80, 0x00]).var_int(),
            Err(Malformed::VarIntNotMinimal.into())
        );
        assert_eq!(reader(&[0x80]).var_int(), Err(Malformed::Truncated.into()));
    }

    #[test]
    fn strings() {
        assert_eq!(reader(b"\x00\x03a/b").string().unwrap(), "a/b");
        assert_eq!(
            reader(b"\x00\x03a\x00b").string(),
            Err(Malformed::NullCharacter.into())
        );
        // U+D800 encoded as if it were a scalar value.
        assert_eq!(
            reader(b"\x00\x03\xED\xA0\x80").string(),
            Err(Malformed::InvalidUtf8.into())
        );
        assert_eq!(
            reader(b"\x00\x04abc").string(),
            Err(Malformed::Truncated.into())
        );
    }
}
