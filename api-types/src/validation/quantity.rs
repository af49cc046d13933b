//! Resource quantities (`100m`, `1`, `128Mi`, `1.5`, `2G`, `1e3`): parsing,
//! exact comparison and conversion.
//!
//! The grammar is Kubernetes' (`apimachinery/pkg/api/resource`):
//! a signed decimal number (`1`, `1.5`, `.5`, `5.`) followed by a binary SI
//! suffix (`Ki` .. `Ei`), a decimal SI suffix (`n`, `u`, `m`, none, `k`, `M`,
//! `G`, `T`, `P`, `E`) or a decimal exponent (`e3`, `E-2`). Values are kept
//! exactly (any number of digits), so `1` equals `1000m` and `1Ki` equals
//! `1024`; comparison never overflows.

use std::cmp::Ordering;
use std::fmt;

use thiserror::Error;

use crate::v1::Quantity;

/// The message Kubernetes gives for a malformed quantity.
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Why a quantity did not parse.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The text does not follow the quantity grammar.
    #[error("{QUANTITY_FORMAT_ERROR}")]
    Format,
    /// The decimal exponent does not fit in 32 bits.
    #[error("quantity exponent is out of range")]
    ExponentRange,
    /// Longer than [`MAX_QUANTITY_LENGTH`]: arithmetic on the digits is
    /// quadratic, so a million-digit `cpu` blocked a worker (and the
    /// scheduler, every cycle) for seconds.
    #[error("quantities must be at most {MAX_QUANTITY_LENGTH} characters, not {0}")]
    TooLong(usize),
}

/// The longest quantity parsed: far past any value Kubernetes writes (an
/// int64 of digits, a fraction and a suffix fit in 30).
pub const MAX_QUANTITY_LENGTH: usize = 64;

/// A parsed quantity: `±mantissa × 10^exp10 × 2^exp2`, exactly.
///
/// Equality and ordering are by value (`1` == `1000m`).
#[derive(Clone, Debug)]
pub struct ParsedQuantity {
    negative: bool,
    /// Decimal digits of the mantissa, most significant first, without
    /// leading or trailing zeros; empty for zero.
    digits: Vec<u8>,
    exp10: i64,
    exp2: i64,
}

impl ParsedQuantity {
    /// Parses a quantity string.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        parse(text)
    }

    /// True for a value below zero.
    pub fn is_negative(&self) -> bool {
        self.negative && !self.is_zero()
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// True when the value is a whole number.
    pub fn is_integer(&self) -> bool {
        if self.is_zero() || self.exp10 >= 0 {
            return true;
        }
        // mantissa × 2^exp2 must be divisible by 10^(-exp10).
        let mut n = BigUint::from_digits(&self.digits);
        n.mul_pow(2, self.exp2);
        let mut k = -self.exp10;
        while k > 0 {
            if n.divmod_small(10) != 0 {
                return false;
            }
            k -= 1;
        }
        true
    }

    /// The value rounded up to a whole number, if it fits in an `i64`.
    pub fn value_ceil(&self) -> Option<i64> {
        self.scaled_ceil(0)
    }

    /// The value in thousandths, rounded up (`100m` → 100, `1` → 1000,
    /// `0.1m` → 1), if it fits in an `i64`. What cpu requests are counted in.
    pub fn millis_ceil(&self) -> Option<i64> {
        self.scaled_ceil(3)
    }

    /// The value as a float (approximate for very long or large numbers).
    pub fn to_f64(&self) -> f64 {
        let mut text = String::with_capacity(self.digits.len() + 24);
        if self.is_negative() {
            text.push('-');
        }
        if self.digits.is_empty() {
            text.push('0');
        }
        for d in &self.digits {
            text.push(char::from(b'0' + d));
        }
        text.push_str(&format!("e{}", self.exp10));
        let base: f64 = text.parse().unwrap_or(0.0);
        // exp2 is at most 60 (Ei), so the conversion is exact.
        base * 2f64.powi(i32::try_from(self.exp2).unwrap_or(0))
    }

    /// `value × 10^scale`, rounded towards +∞, as an `i64`.
    fn scaled_ceil(&self, scale: i64) -> Option<i64> {
        if self.is_zero() {
            return Some(0);
        }
        let e = self.exp10 + scale;
        let magnitude = self.approx_log10() + scale as f64;
        if magnitude > 20.0 {
            return None;
        }
        let mut n = BigUint::from_digits(&self.digits);
        n.mul_pow(2, self.exp2);
        let mut inexact = false;
        if e >= 0 {
            n.mul_pow(10, e);
        } else if magnitude < -1.0 {
            // |value × 10^scale| < 0.1: rounds to 1 or 0.
            n = BigUint::zero();
            inexact = true;
        } else {
            for _ in 0..(-e) {
                if n.divmod_small(10) != 0 {
                    inexact = true;
                }
            }
        }
        let magnitude = i64::try_from(n.to_u128()?).ok()?;
        if self.negative {
            Some(-magnitude)
        } else if inexact {
            magnitude.checked_add(1)
        } else {
            Some(magnitude)
        }
    }

    /// log10 of the magnitude, roughly (nonzero values only).
    fn approx_log10(&self) -> f64 {
        self.digits.len() as f64 + self.exp10 as f64 + self.exp2 as f64 * std::f64::consts::LOG10_2
    }

    fn cmp_magnitude(&self, other: &Self) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        let (a, b) = (self.approx_log10(), other.approx_log10());
        if a - b > 2.0 {
            return Ordering::Greater;
        }
        if b - a > 2.0 {
            return Ordering::Less;
        }
        // Close in magnitude, so the exponents differ by about as much as the
        // digit counts do: scaling to common exponents stays small.
        let e = self.exp10.min(other.exp10);
        let p = self.exp2.min(other.exp2);
        let mut x = BigUint::from_digits(&self.digits);
        x.mul_pow(10, self.exp10 - e);
        x.mul_pow(2, self.exp2 - p);
        let mut y = BigUint::from_digits(&other.digits);
        y.mul_pow(10, other.exp10 - e);
        y.mul_pow(2, other.exp2 - p);
        x.cmp(&y)
    }
}

impl PartialEq for ParsedQuantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ParsedQuantity {}

impl PartialOrd for ParsedQuantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ParsedQuantity {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.is_negative(), other.is_negative()) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl fmt::Display for ParsedQuantity {
    /// Plain scientific form (`15e-1`, `1e0 * 2^10`), for debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_negative() {
            f.write_str("-")?;
        }
        if self.digits.is_empty() {
            f.write_str("0")?;
        }
        for d in &self.digits {
            write!(f, "{d}")?;
        }
        write!(f, "e{}", self.exp10)?;
        if self.exp2 != 0 {
            write!(f, "*2^{}", self.exp2)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ParsedQuantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// The field error for a quantity that did not parse: Kubernetes' message
/// for a malformed one, the length limit for a long one, whose value is
/// cut short rather than echoed whole.
pub fn quantity_error(
    path: impl Into<String>,
    text: &str,
    error: &QuantityError,
) -> crate::status::FieldError {
    match error {
        QuantityError::TooLong(_) => {
            let mut end = 32;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            crate::status::FieldError::invalid(
                path,
                format!("{}...", &text[..end]),
                error.to_string(),
            )
        }
        _ => crate::status::FieldError::invalid(path, text, QUANTITY_FORMAT_ERROR),
    }
}

/// Parses a k8s-openapi [`Quantity`].
pub fn parse_quantity(quantity: &Quantity) -> Result<ParsedQuantity, QuantityError> {
    parse(&quantity.0)
}

fn parse(text: &str) -> Result<ParsedQuantity, QuantityError> {
    if text.len() > MAX_QUANTITY_LENGTH {
        return Err(QuantityError::TooLong(text.len()));
    }
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut negative = false;
    if let Some(&sign) = bytes.first() {
        if sign == b'+' || sign == b'-' {
            negative = sign == b'-';
            pos = 1;
        }
    }
    let int_start = pos;
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    let int_part = &bytes[int_start..pos];
    let mut frac_part: &[u8] = &[];
    if pos < bytes.len() && bytes[pos] == b'.' {
        pos += 1;
        let frac_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        frac_part = &bytes[frac_start..pos];
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(QuantityError::Format);
    }
    let suffix = &text[pos..];
    let (mut exp10, exp2): (i64, i64) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => (parse_exponent(suffix)?, 0),
    };
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| QuantityError::Format)?;
    exp10 -= frac_len;
    let mut digits: Vec<u8> = int_part
        .iter()
        .chain(frac_part)
        .map(|b| b - b'0')
        .skip_while(|&d| d == 0)
        .collect();
    while digits.last() == Some(&0) {
        digits.pop();
        exp10 += 1;
    }
    Ok(ParsedQuantity {
        negative,
        digits,
        exp10,
        exp2,
    })
}

/// `e3`, `E-2`, `e+10`: a decimal exponent suffix.
fn parse_exponent(suffix: &str) -> Result<i64, QuantityError> {
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
        .ok_or(QuantityError::Format)?;
    let unsigned = rest
        .strip_prefix('+')
        .or_else(|| rest.strip_prefix('-'))
        .unwrap_or(rest);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Format);
    }
    rest.parse::<i32>()
        .map(i64::from)
        .map_err(|_| QuantityError::ExponentRange)
}

/// Just enough of an unsigned big integer: little-endian base-2^32 limbs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BigUint(Vec<u32>);

impl BigUint {
    fn zero() -> Self {
        Self(Vec::new())
    }

    fn from_digits(digits: &[u8]) -> Self {
        let mut n = Self::zero();
        for &d in digits {
            n.mul_add_small(10, u32::from(d));
        }
        n
    }

    fn mul_add_small(&mut self, factor: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(factor) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    /// Multiplies by `base^exp` (`exp <= 0` does nothing).
    fn mul_pow(&mut self, base: u32, exp: i64) {
        for _ in 0..exp.max(0) {
            self.mul_add_small(base, 0);
        }
    }

    /// Divides in place; returns the remainder.
    fn divmod_small(&mut self, divisor: u32) -> u32 {
        let mut rem: u64 = 0;
        for limb in self.0.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / u64::from(divisor)) as u32;
            rem = cur % u64::from(divisor);
        }
        self.trim();
        rem as u32
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn to_u128(&self) -> Option<u128> {
        if self.0.len() > 4 {
            return None;
        }
        Some(
            self.0
                .iter()
                .rev()
                .fold(0u128, |acc, &limb| (acc << 32) | u128::from(limb)),
        )
    }
}

impl PartialOrd for BigUint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BigUint {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> ParsedQuantity {
        ParsedQuantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_every_form_kubernetes_accepts() {
        for good in [
            "0", "1", "100m", "128Mi", "1.5", "2G", "1e3", "1E3", "1e-3", "1e+3", "+1", "-1", ".5",
            "5.", "0.1m", "1Ki", "1Ei", "1E", "500n", "3u", "12k", "1.5Gi", "007",
        ] {
            assert!(ParsedQuantity::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn rejects_malformed_quantities() {
        for bad in [
            "", ".", "+", "-", "abc", "1K", "1ki", "1e", "1e3.5", "1.5.5", "1 Gi", " 1", "1Gi ",
            "1MiB", "Mi", "1e1e1", "--1", "1,5",
        ] {
            assert_eq!(
                ParsedQuantity::parse(bad),
                Err(QuantityError::Format),
                "{bad:?}"
            );
        }
        assert_eq!(
            ParsedQuantity::parse("1e99999999999"),
            Err(QuantityError::ExponentRange)
        );
        let long = format!("1{}", "0".repeat(MAX_QUANTITY_LENGTH));
        assert_eq!(
            ParsedQuantity::parse(&long),
            Err(QuantityError::TooLong(MAX_QUANTITY_LENGTH + 1))
        );
        assert!(ParsedQuantity::parse(&long[1..]).is_ok());
        assert_eq!(
            QuantityError::Format.to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn compares_exactly_across_suffixes() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("1.5"), q("1500m"));
        assert_eq!(q("0"), q("-0"));
        assert_eq!(q("1Mi"), q("1048576"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("100m") < q("1"));
        assert!(q("999m") < q("1"));
        assert!(q("1001m") > q("1"));
        assert!(q("-1") < q("0"));
        assert!(q("-2") < q("-1"));
        assert!(q("1e300") > q("1Ei"));
        assert!(q("1e-300") < q("1n"));
        assert!(q("1e-300") > q("0"));
        assert_eq!(q("1e1000000000"), q("10e999999999"));
        assert!(q("1e1000000000") < q("11e999999999"));
    }

    #[test]
    fn converts_to_millis_and_values() {
        assert_eq!(q("100m").millis_ceil(), Some(100));
        assert_eq!(q("1").millis_ceil(), Some(1000));
        assert_eq!(q("1.5").millis_ceil(), Some(1500));
        assert_eq!(q("0.1m").millis_ceil(), Some(1));
        assert_eq!(q("1e-300").millis_ceil(), Some(1));
        assert_eq!(q("0").millis_ceil(), Some(0));
        assert_eq!(q("-1").millis_ceil(), Some(-1000));
        assert_eq!(q("128Mi").value_ceil(), Some(134_217_728));
        assert_eq!(q("2G").value_ceil(), Some(2_000_000_000));
        assert_eq!(q("1.5").value_ceil(), Some(2));
        assert_eq!(q("1e30").value_ceil(), None);
        assert_eq!(q("8Ei").value_ceil(), None);
        assert_eq!(q("7Ei").value_ceil(), Some(7 << 60));
        assert!((q("1.5Gi").to_f64() - 1_610_612_736.0).abs() < 1.0);
        assert!((q("100m").to_f64() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn integer_check() {
        assert!(q("1").is_integer());
        assert!(q("1k").is_integer());
        assert!(q("1000m").is_integer());
        assert!(!q("1500m").is_integer());
        assert!(q("0.5Ki").is_integer());
        assert!(!q("0.001Ki").is_integer());
        assert!(q("0").is_integer());
    }
}
