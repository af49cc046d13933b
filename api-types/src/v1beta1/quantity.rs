//! v1 resource quantities (`"128Mi"`, `"500m"`, `"1.5"`, `"1e3"`) to and from
//! the plain integers of v1beta1 (cpu in millicores, memory in bytes).
//!
//! Rounding: a quantity that is not a whole number of the target unit is
//! rounded **up** (toward +infinity; negative quantities are invalid as
//! resources), so `"0.5m"` of cpu becomes 1 millicore and `"1.5"` bytes 2.
//! Values beyond `i64` saturate at `i64::MAX` (or `i64::MIN`). Parsing is
//! `validation::quantity`'s, so both agree on what a quantity is.
//! On the way back quantities are written canonically: cpu as whole cores
//! (`"2"`) or millicores (`"1500m"`), bytes with the largest exact binary
//! suffix (`"128Mi"`), else the largest exact decimal one (`"1G"`), else
//! plain (`"1001"`).

use super::super::v1::Quantity;
use crate::validation::quantity::ParsedQuantity;

/// `value`, or the `i64` bound on the quantity's side when it does not fit.
fn saturated(parsed: &ParsedQuantity, value: Option<i64>) -> i64 {
    value.unwrap_or(if parsed.is_negative() {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// The value in millis (cpu millicores), rounded up; `None` if it is not
/// a quantity.
pub(crate) fn to_millis(q: &Quantity) -> Option<i64> {
    let parsed = ParsedQuantity::parse(&q.0).ok()?;
    Some(saturated(&parsed, parsed.millis_ceil()))
}

/// The value in whole units (bytes, pods), rounded up.
pub(crate) fn to_units(q: &Quantity) -> Option<i64> {
    let parsed = ParsedQuantity::parse(&q.0).ok()?;
    Some(saturated(&parsed, parsed.value_ceil()))
}

/// The value in whole units if it is one exactly (no rounding needed).
pub(crate) fn to_exact_units(q: &Quantity) -> Option<i64> {
    let parsed = ParsedQuantity::parse(&q.0).ok()?;
    if parsed.is_integer() {
        parsed.value_ceil()
    } else {
        None
    }
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
        // Negative quantities are invalid as resources; they round toward +inf.
        assert_eq!(to_millis(&q("-1.5m")), Some(-1));
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
