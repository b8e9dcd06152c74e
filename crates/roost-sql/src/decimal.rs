//! AWS IoT SQL's `Decimal`: 34 significant digits, exponent within ±999.
//!
//! For: arithmetic on non-integral numbers the way the AWS rules engine does it
//! (`0.1 + 0.2` is `0.3`, `1 / 3.0` has 34 digits), exact comparisons between
//! numbers of any scale, and the text form AWS prints when a Decimal becomes a
//! String (Java's `BigDecimal.toString`, scientific notation included).
//! Never: panic or allocate on any input; results that would leave AWS's range
//! (magnitude 1E-999 to 9.99…E999) come back as `None`, which callers turn into
//! Undefined.
//!
//! Representation: `coef × 10^exp` with `|coef| < 10^34`. The scale is kept, as
//! `BigDecimal` keeps it (`10.0` and `10` are equal but print differently).
//! Rounding is half-even at 34 digits (`MathContext.DECIMAL128`). Intermediate
//! values that outgrow `i128` (products, scaled dividends) go through a 256-bit
//! pair of `u128`s.

use std::cmp::Ordering;
use std::fmt;

/// Significant digits a Decimal keeps.
pub(crate) const PRECISION: u32 = 34;
/// Largest adjusted exponent (position of the first digit) AWS allows.
const MAX_ADJUSTED: i64 = 999;
/// Smallest adjusted exponent of a non-zero value.
const MIN_ADJUSTED: i64 = -999;

const POW10: [u128; 39] = {
    let mut table = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// `10^34`: the first coefficient that no longer fits.
const COEF_LIMIT: u128 = POW10[PRECISION as usize];

fn digits(n: u128) -> u32 {
    if n == 0 {
        1
    } else {
        n.ilog10() + 1
    }
}

/// A decimal number: `coef × 10^exp`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dec {
    coef: i128,
    exp: i32,
}

impl Dec {
    pub(crate) const ZERO: Dec = Dec { coef: 0, exp: 0 };

    /// The coefficient and exponent, for callers that format or inspect.
    pub(crate) fn parts(self) -> (i128, i32) {
        (self.coef, self.exp)
    }

    /// `coef × 10^exp`, rounded to 34 digits; `None` outside AWS's range.
    pub(crate) fn new(coef: i128, exp: i64) -> Option<Dec> {
        round_u128(coef < 0, coef.unsigned_abs(), exp, false)
    }

    pub(crate) fn from_i128(n: i128) -> Option<Dec> {
        Dec::new(n, 0)
    }

    pub(crate) fn is_zero(self) -> bool {
        self.coef == 0
    }

    pub(crate) fn neg(self) -> Dec {
        Dec {
            coef: -self.coef,
            exp: self.exp,
        }
    }

    pub(crate) fn abs(self) -> Dec {
        Dec {
            coef: self.coef.abs(),
            exp: self.exp,
        }
    }

    /// -1, 0 or 1.
    pub(crate) fn signum(self) -> i128 {
        self.coef.signum()
    }

    fn adjusted(self) -> i64 {
        i64::from(self.exp) + i64::from(digits(self.coef.unsigned_abs())) - 1
    }

    /// Whether the value has no fractional part (`10.0` does).
    pub(crate) fn is_integral(self) -> bool {
        if self.exp >= 0 || self.coef == 0 {
            return true;
        }
        let shift = self.exp.unsigned_abs() as usize;
        shift < POW10.len() && self.coef.unsigned_abs().is_multiple_of(POW10[shift])
    }

    /// The value as an integer when it is integral and fits `i128`.
    pub(crate) fn to_i128_exact(self) -> Option<i128> {
        if !self.is_integral() {
            return None;
        }
        self.to_i128_with(Rounding::Down)
    }

    /// The value rounded to an integer, `None` when it does not fit `i128`.
    pub(crate) fn to_i128_with(self, mode: Rounding) -> Option<i128> {
        if self.exp >= 0 {
            let shift = self.exp as usize;
            if shift >= POW10.len() {
                return (self.coef == 0).then_some(0);
            }
            return self.coef.checked_mul(i128::try_from(POW10[shift]).ok()?);
        }
        let shift = self.exp.unsigned_abs() as usize;
        let mag = self.coef.unsigned_abs();
        let (q, r, divisor) = if shift >= POW10.len() {
            // Every digit is below the point: |value| < 1.
            (0u128, mag, None)
        } else {
            (mag / POW10[shift], mag % POW10[shift], Some(POW10[shift]))
        };
        let neg = self.coef < 0;
        let up = r != 0
            && match mode {
                Rounding::Down => false,
                Rounding::Floor => neg,
                Rounding::Ceiling => !neg,
                Rounding::HalfUp => match divisor {
                    Some(d) => r >= d - d / 2,
                    None => false,
                },
            };
        let q = q + u128::from(up);
        let q = i128::try_from(q).ok()?;
        Some(if neg { -q } else { q })
    }

    /// The nearest `f64` (correctly rounded). Infinite beyond `f64`'s range.
    pub(crate) fn to_f64(self) -> f64 {
        let mut buf = StackText::<64>::new();
        // Writing an i128 and an i32 cannot exceed 64 bytes.
        let _ = fmt::write(&mut buf, format_args!("{}e{}", self.coef, self.exp));
        buf.as_str().parse().unwrap_or(f64::NAN)
    }

    /// The shortest decimal that reads back as `f`, as AWS holds a number it
    /// computed "with double precision". Whole values below 10^17 keep one
    /// decimal place (`1.0`), the way they are written in JSON. `None` for NaN
    /// and infinities, which no JSON document or AWS Decimal can hold.
    pub(crate) fn from_f64(f: f64) -> Option<Dec> {
        if !f.is_finite() {
            return None;
        }
        if f == f.trunc() && f.abs() < 1e17 {
            return Some(Dec {
                coef: (f as i128) * 10,
                exp: -1,
            });
        }
        let mut buf = StackText::<64>::new();
        let _ = fmt::write(&mut buf, format_args!("{f:e}"));
        let dec = Dec::parse(buf.as_str())?;
        // `1.5e20` reads better, and prints like JSON, as 150000000000000000000.
        Some(dec.with_exp_at_most_zero())
    }

    /// Moves a positive exponent into the coefficient when it fits.
    fn with_exp_at_most_zero(self) -> Dec {
        if self.exp <= 0 {
            return self;
        }
        let shift = self.exp as usize;
        if shift < POW10.len() {
            if let Some(coef) = i128::try_from(POW10[shift])
                .ok()
                .and_then(|p| self.coef.checked_mul(p))
            {
                if coef.unsigned_abs() < COEF_LIMIT {
                    return Dec { coef, exp: 0 };
                }
            }
        }
        self
    }

    /// Parses `-?digits(.digits)?([eE][+-]?digits)?`. More than 34 significant
    /// digits are rounded. The caller decides which of these forms it accepts
    /// (string conversion is stricter than SQL literals).
    pub(crate) fn parse(text: &str) -> Option<Dec> {
        let bytes = text.as_bytes();
        let mut i = 0;
        let neg = bytes.first() == Some(&b'-');
        if neg || bytes.first() == Some(&b'+') {
            i += 1;
        }
        let mut mag: u128 = 0;
        let mut kept = 0u32; // significant digits accumulated in `mag`
        let mut dropped_exp: i64 = 0; // digits past what `mag` holds
        let mut sticky = false;
        let mut frac_digits: i64 = 0;
        let mut any_digit = false;
        let mut seen_point = false;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_digit() {
                any_digit = true;
                let d = b - b'0';
                if seen_point {
                    frac_digits += 1;
                }
                if mag == 0 && d == 0 {
                    // Leading zeros carry no precision.
                } else if kept < 38 {
                    mag = mag * 10 + u128::from(d);
                    kept += 1;
                } else {
                    // 38 digits are four more than rounding needs; the rest
                    // only matter as "something non-zero was cut".
                    sticky |= d != 0;
                    dropped_exp += 1;
                }
            } else if b == b'.' && !seen_point {
                seen_point = true;
            } else {
                break;
            }
            i += 1;
        }
        if !any_digit {
            return None;
        }
        let mut exp: i64 = 0;
        if i < bytes.len() {
            if bytes[i] != b'e' && bytes[i] != b'E' {
                return None;
            }
            i += 1;
            let exp_neg = match bytes.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                // Anything past nine digits is out of range whatever follows.
                if i - start >= 9 {
                    return None;
                }
                exp = exp * 10 + i64::from(bytes[i] - b'0');
                i += 1;
            }
            if i == start || i != bytes.len() {
                return None;
            }
            if exp_neg {
                exp = -exp;
            }
        }
        let exp = exp - frac_digits + dropped_exp;
        round_u128(neg, mag, exp, sticky)
    }

    pub(crate) fn add(self, other: Dec) -> Option<Dec> {
        let e = self.exp.min(other.exp);
        if let (Some(a), Some(b)) = (
            scaled(self.coef, self.exp - e),
            scaled(other.coef, other.exp - e),
        ) {
            if let Some(sum) = a.checked_add(b) {
                return Dec::new(sum, i64::from(e));
            }
        }
        if self.coef == 0 {
            return Some(other);
        }
        if other.coef == 0 {
            return Some(self);
        }
        // The exponents are too far apart to align exactly. Work at an exponent
        // 35 digits below the larger operand's first digit: both operands fit
        // in 36 digits there, and whatever of the smaller one lies below it only
        // matters as a sticky digit one place further down (it can never sit on
        // a rounding boundary, which are multiples of ten at that scale).
        let top = self.adjusted().max(other.adjusted());
        let work = top - 35;
        let a = at_scale_with_sticky(self, work)?;
        let b = at_scale_with_sticky(other, work)?;
        Dec::new(a.checked_add(b)?, work - 1)
    }

    pub(crate) fn sub(self, other: Dec) -> Option<Dec> {
        self.add(other.neg())
    }

    pub(crate) fn mul(self, other: Dec) -> Option<Dec> {
        let exp = i64::from(self.exp) + i64::from(other.exp);
        if let Some(p) = self.coef.checked_mul(other.coef) {
            return Dec::new(p, exp);
        }
        let neg = (self.coef < 0) != (other.coef < 0);
        let (hi, lo) = mul_wide(self.coef.unsigned_abs(), other.coef.unsigned_abs());
        round_wide(neg, hi, lo, exp)
    }

    /// `BigDecimal.divide(other, DECIMAL128)`: an exact quotient keeps the
    /// preferred scale (`self.scale - other.scale`) where it can, an inexact
    /// one has 34 digits. `None` for division by zero.
    pub(crate) fn div(self, other: Dec) -> Option<Dec> {
        if other.coef == 0 {
            return None;
        }
        let preferred = i64::from(self.exp) - i64::from(other.exp);
        if self.coef == 0 {
            return Dec::new(0, preferred.clamp(-(i32::MAX as i64), i32::MAX as i64));
        }
        let neg = (self.coef < 0) != (other.coef < 0);
        let ca = self.coef.unsigned_abs();
        let cb = other.coef.unsigned_abs();
        // Scale the dividend so the quotient has at least 36 digits (two below
        // the rounding digit) yet stays under 10^37.
        let k = 36 + digits(cb) - digits(ca);
        let (hi, lo) = if k <= 38 {
            mul_wide(ca, POW10[k as usize])
        } else {
            mul_wide(ca * POW10[(k - 38) as usize], POW10[38])
        };
        let (q_hi, mut q, r) = divrem_wide(hi, lo, cb);
        debug_assert_eq!(q_hi, 0);
        let mut exp = preferred - i64::from(k);
        if r != 0 {
            return round_u128(neg, q, exp, true);
        }
        while exp < preferred && q % 10 == 0 {
            q /= 10;
            exp += 1;
        }
        round_u128(neg, q, exp, false)
    }

    /// `self - trunc(self / other) × other`, the sign following `self` (Java's
    /// `BigDecimal.remainder`). `None` for a zero divisor or when the operands
    /// cannot be aligned within 128 bits (exponents hundreds of places apart).
    pub(crate) fn rem(self, other: Dec) -> Option<Dec> {
        if other.coef == 0 {
            return None;
        }
        let e = self.exp.min(other.exp);
        let a = scaled(self.coef, self.exp - e)?;
        let b = scaled(other.coef, other.exp - e)?;
        Dec::new(a % b, i64::from(e))
    }

    /// Compares values, not representations (`1.0 == 1`).
    pub(crate) fn cmp_value(self, other: Dec) -> Ordering {
        let (sa, sb) = (self.coef.signum(), other.coef.signum());
        if sa != sb || sa == 0 {
            return sa.cmp(&sb);
        }
        let by_magnitude = match self.adjusted().cmp(&other.adjusted()) {
            Ordering::Equal => {
                // Same first-digit position: the exponents differ by less than
                // 34, so aligning cannot overflow.
                let e = self.exp.min(other.exp);
                let a = scaled(self.coef, self.exp - e).map(i128::unsigned_abs);
                let b = scaled(other.coef, other.exp - e).map(i128::unsigned_abs);
                a.cmp(&b)
            }
            unequal => unequal,
        };
        if sa < 0 {
            by_magnitude.reverse()
        } else {
            by_magnitude
        }
    }

    /// Drops trailing zeros of the coefficient (`2.00` → `2`, `100` → `1E+2`).
    pub(crate) fn strip_trailing_zeros(self) -> Dec {
        if self.coef == 0 {
            return Dec::ZERO;
        }
        let mut d = self;
        while d.coef % 10 == 0 {
            d.coef /= 10;
            d.exp += 1;
        }
        d
    }

    /// Truncates (toward zero) to `places` digits after the point; a value
    /// with fewer places is returned unchanged.
    pub(crate) fn trunc_places(self, places: u32) -> Dec {
        let target = -(places as i32);
        if self.exp >= target {
            return self;
        }
        let shift = (target - self.exp) as usize;
        if shift >= POW10.len() {
            return Dec {
                coef: 0,
                exp: target,
            };
        }
        Dec {
            // POW10[shift] < 2^127 for shift <= 38, so the cast is exact.
            coef: self.coef / POW10[shift] as i128,
            exp: target,
        }
    }
}

/// How [`Dec::to_i128_with`] rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rounding {
    /// Toward zero (Java's `RoundingMode.DOWN`).
    Down,
    /// Toward −∞.
    Floor,
    /// Toward +∞.
    Ceiling,
    /// To nearest, halves away from zero.
    HalfUp,
}

impl PartialEq for Dec {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_value(*other) == Ordering::Equal
    }
}

/// `coef × 10^shift` if it fits an `i128`.
fn scaled(coef: i128, shift: i32) -> Option<i128> {
    let shift = usize::try_from(shift).ok()?;
    if coef == 0 {
        return Some(0);
    }
    let p = i128::try_from(*POW10.get(shift)?).ok()?;
    coef.checked_mul(p)
}

/// `d` expressed at exponent `work - 1`, truncated, with a 1 in the last place
/// standing in for any non-zero digits cut off.
fn at_scale_with_sticky(d: Dec, work: i64) -> Option<i128> {
    let exp = i64::from(d.exp);
    let (at_work, sticky) = if exp >= work {
        let shift = usize::try_from(exp - work).ok()?;
        (
            d.coef
                .checked_mul(i128::try_from(*POW10.get(shift)?).ok()?)?,
            false,
        )
    } else {
        let shift = usize::try_from(work - exp).ok()?;
        match POW10.get(shift) {
            Some(&p) => {
                let p = p as i128;
                (d.coef / p, d.coef % p != 0)
            }
            None => (0, d.coef != 0),
        }
    };
    let mut v = at_work.checked_mul(10)?;
    if sticky {
        v += d.coef.signum();
    }
    Some(v)
}

/// Rounds `mag × 10^exp` to 34 digits, half-even; `sticky` says non-zero
/// digits were already cut off below `mag` (callers keep at least one guard
/// digit in `mag` when they set it).
fn round_u128(neg: bool, mut mag: u128, mut exp: i64, sticky: bool) -> Option<Dec> {
    let n = digits(mag);
    if n > PRECISION {
        let drop = (n - PRECISION) as usize;
        let p = POW10[drop];
        let (q, r) = (mag / p, mag % p);
        let half = p / 2;
        let up = r > half || (r == half && (sticky || q % 2 == 1));
        mag = q + u128::from(up);
        exp += drop as i64;
        if mag == COEF_LIMIT {
            mag /= 10;
            exp += 1;
        }
    }
    finish(neg, mag, exp)
}

fn round_wide(neg: bool, hi: u128, lo: u128, exp: i64) -> Option<Dec> {
    if hi == 0 {
        return round_u128(neg, lo, exp, false);
    }
    // Callers keep wide values below 10^72, so at most 38 digits go.
    let mut n = 39u32;
    while n < 77 && !lt_wide((hi, lo), pow10_wide(n)) {
        n += 1;
    }
    let drop = (n - PRECISION) as usize;
    if drop >= POW10.len() {
        return None;
    }
    let p = POW10[drop];
    let (q_hi, q, r) = divrem_wide(hi, lo, p);
    if q_hi != 0 {
        return None;
    }
    let half = p / 2;
    let up = r > half || (r == half && q % 2 == 1);
    let mut mag = q + u128::from(up);
    let mut exp = exp + drop as i64;
    if mag == COEF_LIMIT {
        mag /= 10;
        exp += 1;
    }
    finish(neg, mag, exp)
}

fn finish(neg: bool, mag: u128, exp: i64) -> Option<Dec> {
    let coef = i128::try_from(mag).ok()?;
    if mag != 0 {
        let adjusted = exp + i64::from(digits(mag)) - 1;
        if !(MIN_ADJUSTED..=MAX_ADJUSTED).contains(&adjusted) {
            return None;
        }
    }
    // A zero may carry any scale; keep it within i32 like a BigDecimal's.
    let exp = i32::try_from(exp).ok()?;
    Some(Dec {
        coef: if neg { -coef } else { coef },
        exp,
    })
}

/// `10^n` as a 256-bit value, for 38 <= n < 77.
fn pow10_wide(n: u32) -> (u128, u128) {
    mul_wide(POW10[(n - 38) as usize], POW10[38])
}

fn lt_wide(a: (u128, u128), b: (u128, u128)) -> bool {
    a < b
}

/// The full 256-bit product of two `u128`s as (high, low).
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & MASK);
    let (b1, b0) = (b >> 64, b & MASK);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & MASK) + (p10 & MASK);
    let lo = (p00 & MASK) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// Divides a 256-bit value by `d` (`0 < d < 2^127`): (quotient high,
/// quotient low, remainder). Bit by bit: only wide products and scaled
/// dividends come here, never the common small cases.
fn divrem_wide(hi: u128, lo: u128, d: u128) -> (u128, u128, u128) {
    debug_assert!(d != 0 && d < (1u128 << 127));
    let mut rem: u128 = 0;
    let mut q_hi: u128 = 0;
    let mut q_lo: u128 = 0;
    for i in (0..256).rev() {
        let bit = if i >= 128 {
            (hi >> (i - 128)) & 1
        } else {
            (lo >> i) & 1
        };
        rem = (rem << 1) | bit;
        if rem >= d {
            rem -= d;
            if i >= 128 {
                q_hi |= 1 << (i - 128);
            } else {
                q_lo |= 1 << i;
            }
        }
    }
    (q_hi, q_lo, rem)
}

impl fmt::Display for Dec {
    /// Java's `BigDecimal.toString`: plain notation unless the exponent is
    /// positive or the value is smaller than 10^-6, then `d.dddE±n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut digits_buf = StackText::<48>::new();
        let _ = fmt::write(
            &mut digits_buf,
            format_args!("{}", self.coef.unsigned_abs()),
        );
        let ds = digits_buf.as_str();
        let n = ds.len() as i64;
        let exp = i64::from(self.exp);
        let adjusted = exp + n - 1;
        if self.coef < 0 {
            f.write_str("-")?;
        }
        if exp <= 0 && adjusted >= -6 {
            let scale = -exp;
            if scale == 0 {
                f.write_str(ds)
            } else if n > scale {
                let split = (n - scale) as usize;
                write!(f, "{}.{}", &ds[..split], &ds[split..])
            } else {
                f.write_str("0.")?;
                for _ in 0..(scale - n) {
                    f.write_str("0")?;
                }
                f.write_str(ds)
            }
        } else {
            f.write_str(&ds[..1])?;
            if n > 1 {
                write!(f, ".{}", &ds[1..])?;
            }
            write!(
                f,
                "E{}{}",
                if adjusted >= 0 { "+" } else { "-" },
                adjusted.abs()
            )
        }
    }
}

/// A fixed-size text buffer, so number formatting on the hot path does not
/// allocate.
pub(crate) struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackText<N> {
    pub(crate) fn new() -> Self {
        StackText {
            buf: [0; N],
            len: 0,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        if end > N {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    fn s(d: Option<Dec>) -> String {
        d.map(|d| d.to_string()).unwrap_or_else(|| "None".into())
    }

    #[test]
    fn java_to_string() {
        for (input, want) in [
            ("10.0", "10.0"),
            ("0.1", "0.1"),
            ("-0.000001", "-0.000001"),
            ("0.0000001", "1E-7"),
            ("1e3", "1E+3"),
            ("123.4500", "123.4500"),
            ("0", "0"),
            ("0.00", "0.00"),
            ("5E-12", "5E-12"),
            ("1.5e20", "1.5E+20"),
        ] {
            assert_eq!(d(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn arithmetic_matches_decimal128() {
        // Expected values are what java.math.BigDecimal gives with
        // MathContext.DECIMAL128.
        assert_eq!(s(d("0.1").add(d("0.2"))), "0.3");
        assert_eq!(s(d("1.5").add(d("2.25"))), "3.75");
        assert_eq!(
            s(d("1").div(d("3.0"))),
            "0.3333333333333333333333333333333333"
        );
        assert_eq!(
            s(d("2").div(d("3"))),
            "0.6666666666666666666666666666666667"
        );
        assert_eq!(s(d("10.0").div(d("4"))), "2.5");
        assert_eq!(s(d("100").div(d("4"))), "25");
        assert_eq!(
            s(d("902.5").div(d("9"))),
            "100.2777777777777777777777777777778"
        );
        assert_eq!(s(d("2.5").mul(d("2"))), "5.0");
        assert_eq!(s(d("1.1").mul(d("3"))), "3.3");
        assert_eq!(
            s(d("1").add(d("1e-40"))),
            "1.000000000000000000000000000000000"
        );
        assert_eq!(
            s(d("1").sub(d("1e-40"))),
            "1.000000000000000000000000000000000"
        );
        assert_eq!(
            s(d("12345678901234567890.123").mul(d("98765432109876543210.987"))),
            "1.219326311370217952261797134336297E+39"
        );
        assert_eq!(s(d("7.5").rem(d("2"))), "1.5");
        assert_eq!(
            s(d("123456789012345678901234567890").add(d("0.000000000123456789"))),
            "123456789012345678901234567890.0000"
        );
        assert_eq!(
            s(d("-5e-30").add(d("7e10"))),
            "70000000000.00000000000000000000000"
        );
        assert_eq!(
            s(d("1e-5").div(d("3e7"))),
            "3.333333333333333333333333333333333E-13"
        );
        assert_eq!(s(d("-7.5").rem(d("2"))), "-1.5");
        assert_eq!(s(d("1").div(d("0"))), "None");
        assert_eq!(s(d("9e999").mul(d("10"))), "None");
    }

    #[test]
    fn rounding_is_half_even_at_34_digits() {
        assert_eq!(
            d("1.0000000000000000000000000000000005").to_string(),
            "1.000000000000000000000000000000000"
        );
        assert_eq!(
            d("1.0000000000000000000000000000000015").to_string(),
            "1.000000000000000000000000000000002"
        );
        assert_eq!(
            d("1.00000000000000000000000000000000050001").to_string(),
            "1.000000000000000000000000000000001"
        );
        assert_eq!(
            d("99999999999999999999999999999999995").to_string(),
            "1.000000000000000000000000000000000E+35"
        );
    }

    #[test]
    fn comparisons_ignore_scale() {
        assert_eq!(d("1.0"), d("1"));
        assert!(d("1.01").cmp_value(d("1.1")).is_lt());
        assert!(d("-2").cmp_value(d("-1.5")).is_lt());
        assert!(d("1e-900").cmp_value(d("0")).is_gt());
    }

    #[test]
    fn integer_conversions() {
        assert_eq!(d("2.5").to_i128_with(Rounding::HalfUp), Some(3));
        assert_eq!(d("-2.5").to_i128_with(Rounding::HalfUp), Some(-3));
        assert_eq!(d("-1.2").to_i128_with(Rounding::Floor), Some(-2));
        assert_eq!(d("-1.2").to_i128_with(Rounding::Ceiling), Some(-1));
        assert_eq!(d("-1.7").to_i128_with(Rounding::Down), Some(-1));
        assert_eq!(d("1e3").to_i128_exact(), Some(1000));
        assert_eq!(d("10.0").to_i128_exact(), Some(10));
        assert_eq!(d("10.5").to_i128_exact(), None);
        assert_eq!(d("1e200").to_i128_exact(), None);
    }

    #[test]
    fn floats_round_trip() {
        for f in [
            54.98,
            -122.3359976,
            0.1,
            1e300,
            5e-324,
            std::f64::consts::FRAC_PI_2,
            1e17,
            10.0,
        ] {
            assert_eq!(Dec::from_f64(f).unwrap().to_f64(), f);
        }
        assert_eq!(Dec::from_f64(10.0).unwrap().to_string(), "10.0");
        assert_eq!(Dec::from_f64(54.98).unwrap().to_string(), "54.98");
    }
}
