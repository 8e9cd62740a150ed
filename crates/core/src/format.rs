//! Sizes as a person reads them, for the verdict's explanation and remedies (Ruby's
//! BloatProbe::Format.bytes formats the same way for its tables).

const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

/// "512 B", "1.5 MiB", "12 GiB": one decimal under ten of a unit, none above.
pub fn bytes(count: f64) -> String {
    let mut scaled = count;
    let mut unit = 0;
    while scaled.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        return if count.fract() == 0.0 { format!("{count:.0} B") } else { format!("{count} B") };
    }
    let decimals = if scaled.abs() < 10.0 { 1 } else { 0 };
    format!("{scaled:.decimals$} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn sizes_take_the_largest_unit_under_1024_with_a_decimal_under_ten() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(64.0 * 1048576.0), "64 MiB");
        assert_eq!(bytes(-3.0 * 1048576.0), "-3.0 MiB");
        assert_eq!(bytes(5.0 * 1024.0f64.powi(5)), "5120 TiB");
    }
}
