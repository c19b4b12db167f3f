//! proptest strategies for what `derive(Arbitrary)` cannot invent: JSON values, finite
//! floats, unknown fields and unknown tagged objects.

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::extra::{Extra, Unknown};

/// A finite float (JSON has no NaN or infinity).
pub(crate) fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1.0e6..1.0e6_f64),
        any::<i32>().prop_map(f64::from),
        Just(0.0)
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        float().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

/// Any JSON value, a few levels deep.
pub(crate) fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub(crate) fn nullable_json() -> impl Strategy<Value = Option<Option<Value>>> {
    proptest::option::of(proptest::option::of(json()))
}

pub(crate) fn nullable_json_list() -> impl Strategy<Value = Option<Option<Vec<Value>>>> {
    proptest::option::of(proptest::option::of(prop::collection::vec(json(), 0..3)))
}

impl Arbitrary for Extra {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;
    fn arbitrary_with((): ()) -> Self::Strategy {
        // `x_` keys never collide with a modelled field.
        prop::collection::btree_map("x_[a-z]{1,6}", json(), 0..3)
            .prop_map(|m| Extra(m.into_iter().collect()))
            .boxed()
    }
}

impl Arbitrary for Unknown {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;
    fn arbitrary_with((): ()) -> Self::Strategy {
        ("x\\.[a-z_]{1,10}", any::<Extra>())
            .prop_map(|(tag, extra)| {
                let mut map = Map::new();
                map.insert("type".into(), Value::String(tag));
                map.extend(extra.0);
                Unknown(map)
            })
            .boxed()
    }
}
