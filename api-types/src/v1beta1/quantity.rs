//! v1 resource quantities (`"128Mi"`, `"500m"`, `"1.5"`, `"1e3"`) to and from
//! the plain integers of v1beta1 (cpu in millicores, memory in bytes).
//!
//! Rounding: a quantity that is not a whole number of the target unit is
//! rounded **up** (away from zero), as Kubernetes' `Value()`/`MilliValue()`
//! do, so `"0.5m"` of cpu becomes 1 millicore and `"1.5"` bytes becomes 2.
//! Values beyond `i64` saturate at `i64::MAX` (or `i64::MIN`).
//! On the way back quantities are written canonically: cpu as whole cores
//! (`"2"`) or millicores (`"1500m"`), bytes with the largest exact binary
//! suffix (`"128Mi"`), else the largest exact decimal one (`"1G"`), else
//! plain (`"1001"`).

use super::super::v1::Quantity;

/// Parses a v1 quantity and returns its value × 10^`scale`, rounded up
/// (away from zero) and saturated to `i64`; `None` if `text` is not a
/// quantity.
pub(crate) fn scaled_value(text: &str, scale: i32) -> Option<i64> {
    let parsed = parse(text)?;
    Some(parsed.scaled(scale))
}

/// The value in millis (cpu millicores).
pub(crate) fn to_millis(q: &Quantity) -> Option<i64> {
    scaled_value(&q.0, 3)
}

/// The value in whole units (bytes, pods), rounded up.
pub(crate) fn to_units(q: &Quantity) -> Option<i64> {
    scaled_value(&q.0, 0)
}

/// The value in whole units if it is one exactly (no rounding needed).
pub(crate) fn to_exact_units(q: &Quantity) -> Option<i64> {
    let parsed = parse(&q.0)?;
    parsed.is_integral().then(|| parsed.scaled(0))
}

/// Millicores as a canonical quantity: `"2"` or `"1500m"`.
pub(crate) fn from_millis(millis: i64) -> Quantity {
    if millis % 1000 == 0 {
        Quantity((millis / 1000).to_string())
    } else {
        Quantity(format!("{millis}m"))
    }
}

/// A count of units (bytes) as a canonical quantity: `"128Mi"`, `"1G"`,
/// `"1001"`.
pub(crate) fn from_units(units: i64) -> Quantity {
    if units == 0 {
        return Quantity("0".into());
    }
    for (suffix, power) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        let base = 1i64 << power;
        if units % base == 0 {
            return Quantity(format!("{}{suffix}", units / base));
        }
    }
    for (suffix, power) in [
        ("E", 18),
        ("P", 15),
        ("T", 12),
        ("G", 9),
        ("M", 6),
        ("k", 3),
    ] {
        let base = 10i64.pow(power);
        if units % base == 0 {
            return Quantity(format!("{}{suffix}", units / base));
        }
    }
    Quantity(units.to_string())
}

/// A parsed quantity: ± `mantissa` × 10^`exp10` × 2^`exp2`.
struct Parsed {
    negative: bool,
    mantissa: u128,
    exp10: i64,
    exp2: u32,
    /// The mantissa did not fit: the value is huge.
    overflow: bool,
}

impl Parsed {
    /// Whether the value is a whole number.
    fn is_integral(&self) -> bool {
        if self.overflow || self.exp10 >= 0 || self.mantissa == 0 {
            return true;
        }
        let Some(div) = u32::try_from(-self.exp10)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
        else {
            return false;
        };
        let Some(m) = self.mantissa.checked_mul(1u128 << self.exp2) else {
            return true;
        };
        m % div == 0
    }

    /// value × 10^scale, rounded away from zero, saturated.
    fn scaled(&self, scale: i32) -> i64 {
        let magnitude = self.magnitude(self.exp10 + i64::from(scale));
        let clamped = i64::try_from(magnitude).unwrap_or(i64::MAX);
        if self.negative {
            -clamped
        } else {
            clamped
        }
    }

    /// |value| × 10^(exp10 - self.exp10 shift), rounded up; `u128::MAX` on
    /// overflow.
    fn magnitude(&self, exp10: i64) -> u128 {
        if self.mantissa == 0 {
            return 0;
        }
        if self.overflow {
            return u128::MAX;
        }
        let Some(m) = self.mantissa.checked_mul(1u128 << self.exp2) else {
            return u128::MAX;
        };
        if exp10 >= 0 {
            u32::try_from(exp10)
                .ok()
                .and_then(|e| 10u128.checked_pow(e))
                .and_then(|p| m.checked_mul(p))
                .unwrap_or(u128::MAX)
        } else {
            match u32::try_from(-exp10)
                .ok()
                .and_then(|e| 10u128.checked_pow(e))
            {
                Some(div) => m.div_ceil(div),
                // Dividing by more than u128 can hold: a tiny positive value.
                None => 1,
            }
        }
    }
}

/// Parses `[+-]digits[.digits][suffix]` where suffix is a binary SI
/// suffix (`Ki`..`Ei`), a decimal one (`n u m k M G T P E`) or an exponent
/// (`e3`, `E-2`).
fn parse(text: &str) -> Option<Parsed> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return None;
    }
    let mut mantissa: u128 = 0;
    let mut overflow = false;
    for digit in int_part.bytes().chain(frac_part.bytes()) {
        match mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit - b'0')))
        {
            Some(m) => mantissa = m,
            None => overflow = true,
        }
    }
    let frac_len = i64::try_from(frac_part.len()).ok()?;
    let (exp10, exp2) = match suffix {
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
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (exponent.parse::<i64>().ok()?.clamp(-1000, 1000), 0)
        }
    };
    Some(Parsed {
        negative,
        mantissa,
        exp10: exp10 - frac_len,
        exp2,
        overflow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    #[test]
    fn cpu_quantities_become_millicores() {
        assert_eq!(to_millis(&q("100m")), Some(100));
        assert_eq!(to_millis(&q("1")), Some(1000));
        assert_eq!(to_millis(&q("0.5")), Some(500));
        assert_eq!(to_millis(&q("1.5")), Some(1500));
        assert_eq!(to_millis(&q("2k")), Some(2_000_000));
        assert_eq!(to_millis(&q("1e-3")), Some(1));
        // Not a whole millicore: rounded up.
        assert_eq!(to_millis(&q("0.5m")), Some(1));
        assert_eq!(to_millis(&q("1n")), Some(1));
        assert_eq!(to_millis(&q("0")), Some(0));
        assert_eq!(to_millis(&q("-1.5m")), Some(-2));
    }

    #[test]
    fn memory_quantities_become_bytes() {
        assert_eq!(to_units(&q("128Mi")), Some(134_217_728));
        assert_eq!(to_units(&q("1G")), Some(1_000_000_000));
        assert_eq!(to_units(&q("1Gi")), Some(1_073_741_824));
        assert_eq!(to_units(&q("1.5Ki")), Some(1536));
        assert_eq!(to_units(&q("1e3")), Some(1000));
        assert_eq!(to_units(&q("1E3")), Some(1000));
        assert_eq!(to_units(&q("1E")), Some(1_000_000_000_000_000_000));
        assert_eq!(to_units(&q("500m")), Some(1));
        assert_eq!(to_units(&q("3221225472")), Some(3_221_225_472));
        // Too large: saturates.
        assert_eq!(to_units(&q("100Ei")), Some(i64::MAX));
        assert_eq!(to_units(&q("1e100")), Some(i64::MAX));
        assert_eq!(
            to_units(&q("99999999999999999999999999999999999999999999")),
            Some(i64::MAX)
        );
    }

    #[test]
    fn exactness_is_detected() {
        assert_eq!(to_exact_units(&q("110")), Some(110));
        assert_eq!(to_exact_units(&q("1.5Ki")), Some(1536));
        assert_eq!(to_exact_units(&q("500m")), None);
        assert_eq!(to_exact_units(&q("1.5")), None);
    }

    #[test]
    fn garbage_is_not_a_quantity() {
        for bad in [
            "", "abc", "1.2.3", "Mi", "1Zi", "1e", "1e+", "--1", ".", "1 Mi",
        ] {
            assert_eq!(to_units(&q(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn canonical_output() {
        assert_eq!(from_millis(100).0, "100m");
        assert_eq!(from_millis(1000).0, "1");
        assert_eq!(from_millis(2500).0, "2500m");
        assert_eq!(from_units(134_217_728).0, "128Mi");
        assert_eq!(from_units(3_221_225_472).0, "3Gi");
        assert_eq!(from_units(1_000_000_000).0, "1G");
        assert_eq!(from_units(1024 * 1000).0, "1000Ki");
        assert_eq!(from_units(1001).0, "1001");
        assert_eq!(from_units(0).0, "0");
        assert_eq!(from_units(-2048).0, "-2Ki");
    }
}
