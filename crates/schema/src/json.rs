//! JSON comparison for round-trip checks.

use serde_json::Value;

/// Whether two JSON values are equal, with key order ignored (as `serde_json` does) and
/// numbers compared as numbers: `1`, `1.0` and `1e0` are equal, as they are to every JSON
/// reader. (`serde_json::Value`'s own `==` tells `1` from `1.0`.)
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_equal(
            &json!({"a": 1, "b": [60]}),
            &json!({"b": [60.0], "a": 1.0})
        ));
        assert!(!json_equal(&json!(1), &json!(1.5)));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": null})));
        assert!(!json_equal(&json!("1"), &json!(1)));
    }
}
