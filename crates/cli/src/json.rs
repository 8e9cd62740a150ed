//! Readings as JSON, field by field from their declaration (the same names as the Ruby
//! readings' `to_h`).

use bloat_probe_core::schema::{Reading, Value};

pub fn reading(reading: &dyn Reading) -> String {
    let fields = reading.schema().fields.iter().zip(reading.values());
    let members: Vec<String> =
        fields.map(|(field, value)| format!("{}:{}", string(field.name), self::value(&value))).collect();
    format!("{{{}}}", members.join(","))
}

fn value(value: &Value<'_>) -> String {
    match value {
        Value::Int(n) => n.to_string(),
        Value::Float(x) if x.is_finite() => x.to_string(),
        Value::Float(_) | Value::Nil | Value::Object => "null".into(),
        Value::Flag(flag) => flag.to_string(),
        Value::Text(text) => string(text),
        Value::Name(name) => string(name),
        Value::Texts(texts) => list(texts.iter().map(|text| string(text))),
        Value::One(nested) => reading(*nested),
        Value::Many(nested) => list(nested.iter().map(|nested| reading(*nested))),
    }
}

pub fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(","))
}

pub fn string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c if (c as u32) < 0x20 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use bloat_probe_core::trend::Trend;

    #[test]
    fn strings_are_escaped_and_readings_keep_their_declared_names() {
        assert_eq!(string("a \"b\"\\\n\u{1}"), r#""a \"b\"\\\n\u0001""#);
        let trend = Trend {
            samples: 3,
            seconds: 1.5,
            in_use_per_hour: None,
            ruby_heap_per_hour: Some(2.0),
            rss_per_hour: Some(f64::NAN),
            baseline_in_use: Some(7),
            baseline_ruby_heap: None,
            baseline_rss: 9,
        };
        assert_eq!(
            reading(&trend),
            r#"{"samples":3,"seconds":1.5,"in_use_per_hour":null,"ruby_heap_per_hour":2,"rss_per_hour":null,"baseline_in_use":7,"baseline_ruby_heap":null,"baseline_rss":9}"#
        );
    }
}
