//! Property tests: on random patterns and events, the compiled matcher (one
//! automaton for all patterns, lazy JSON scanning) returns exactly what the
//! reference interpreter says, pattern by pattern.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use router_rules::topology::FilterPolicyScope;
use router_rules::{reference, BusMatcher, Dialect, Pattern, TopicMatcher};
use serde_json::{json, Map, Value};
use switchyard_shared::events::SnsAttribute;

fn key() -> impl Strategy<Value = String> {
    // Dotted keys ("a.b" is the path a → b) meet their nested spellings.
    prop_oneof![
        Just("a"),
        Just("b"),
        Just("c"),
        Just("k\"q"),
        Just("é"),
        Just("a.b"),
        Just("b.c.a"),
    ]
    .prop_map(str::to_owned)
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x"),
        Just("xy"),
        Just("yx"),
        Just("X"),
        Just(""),
        Just("10.0.0.1"),
        Just("10.1.0.0"),
        Just("2001:db8::1"),
        Just("a\"b\\c"),
        Just("Été"),
        Just("x*y"),
    ]
    .prop_map(str::to_owned)
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(1.0),
        Just(1.5),
        Just(-2.0),
        Just(35.0),
        Just(100.0),
        Just(1e9),
        (-5i32..6).prop_map(f64::from)
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => string().prop_map(Value::from),
        3 => number().prop_map(|n| json!(n)),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn event_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(key(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Value> {
    btree_map(key(), event_value(), 0..5).prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn cond(sns: bool) -> BoxedStrategy<Value> {
    let mut options: Vec<BoxedStrategy<Value>> = vec![
        scalar().boxed(),
        string().prop_map(|s| json!({"prefix": s})).boxed(),
        string().prop_map(|s| json!({"suffix": s})).boxed(),
        string().prop_map(|s| json!({"equals-ignore-case": s})).boxed(),
        prop_oneof![
            string().prop_map(|s| json!({"anything-but": s})),
            vec(string(), 1..3).prop_map(|v| json!({"anything-but": v})),
            vec(number(), 1..3).prop_map(|v| json!({"anything-but": v})),
            string().prop_filter("non-empty", |s| !s.is_empty()).prop_map(|s| json!({"anything-but": {"prefix": s}})),
        ]
        .boxed(),
        prop_oneof![
            (prop_oneof![Just(">"), Just(">="), Just("<"), Just("<="), Just("=")], number())
                .prop_map(|(op, n)| json!({"numeric": [op, n]})),
            (number(), number(), any::<bool>(), any::<bool>()).prop_map(|(a, b, i, j)| {
                json!({"numeric": [if i { ">=" } else { ">" }, a.min(b), if j { "<=" } else { "<" }, a.max(b) + 1.0]})
            }),
        ]
        .boxed(),
        any::<bool>().prop_map(|b| json!({"exists": b})).boxed(),
        prop_oneof![Just("10.0.0.0/8"), Just("10.0.0.1/32"), Just("2001:db8::/32")].prop_map(|c| json!({"cidr": c})).boxed(),
    ];
    if !sns {
        options.push(
            prop_oneof![
                Just("x*"),
                Just("*y"),
                Just("*"),
                Just("x*y"),
                Just("*\\**"),
                Just("É*")
            ]
            .prop_map(|w| json!({"wildcard": w}))
            .boxed(),
        );
        options.push(
            string()
                .prop_map(|s| json!({"prefix": {"equals-ignore-case": s}}))
                .boxed(),
        );
        options.push(
            string()
                .prop_map(|s| json!({"suffix": {"equals-ignore-case": s}}))
                .boxed(),
        );
        options.push(
            prop_oneof![
                string()
                    .prop_filter("non-empty", |s| !s.is_empty())
                    .prop_map(|s| json!({"anything-but": {"suffix": s}})),
                vec(string(), 1..3)
                    .prop_map(|v| json!({"anything-but": {"equals-ignore-case": v}})),
                Just(json!({"anything-but": {"wildcard": ["x*", "*y"]}})),
                vec(string().prop_filter("non-empty", |s| !s.is_empty()), 1..3)
                    .prop_map(|v| json!({"anything-but": {"prefix": v}})),
                vec(string().prop_filter("non-empty", |s| !s.is_empty()), 1..3)
                    .prop_map(|v| json!({"anything-but": {"suffix": v}})),
            ]
            .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

fn leaf(sns: bool) -> impl Strategy<Value = Value> {
    vec(cond(sns), 1..4).prop_map(Value::Array)
}

fn pattern(sns: bool, nested: bool) -> BoxedStrategy<Value> {
    let field = if nested {
        prop_oneof![
            3 => leaf(sns).boxed(),
            1 => btree_map(key(), leaf(sns), 1..3).prop_map(|m| Value::Object(m.into_iter().collect())).boxed(),
        ]
        .boxed()
    } else {
        leaf(sns).boxed()
    };
    let object =
        btree_map(key(), field, 1..4).prop_map(|m| m.into_iter().collect::<Map<String, Value>>());
    (
        object,
        proptest::option::weighted(
            0.2,
            (
                btree_map(key(), leaf(sns), 1..2),
                btree_map(key(), leaf(sns), 1..2),
            ),
        ),
    )
        .prop_map(|(mut o, or)| {
            if let Some((x, y)) = or {
                let branch = |m: BTreeMap<String, Value>| Value::Object(m.into_iter().collect());
                o.insert("$or".into(), json!([branch(x), branch(y)]));
            }
            Value::Object(o)
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn bus_matcher_agrees_with_reference(
        patterns in vec(pattern(false, true), 1..6),
        events in vec(event(), 1..4),
        pretty in any::<bool>(),
    ) {
        let valid: Vec<(usize, &Value, Pattern)> = patterns
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Pattern::parse(p, Dialect::EventBridge).ok().map(|parsed| (i, p, parsed)))
            .collect();
        let m = BusMatcher::compile(valid.iter().map(|(i, p, _)| (*i, *p))).unwrap();
        for e in &events {
            let text = if pretty { serde_json::to_string_pretty(e).unwrap() } else { e.to_string() };
            let fields = reference::flatten_json(e);
            let want: Vec<usize> = valid.iter().filter(|(_, _, p)| reference::matches(p, &fields)).map(|(i, _, _)| *i).collect();
            prop_assert_eq!(m.matches(&text), want, "event {}", text);
        }
    }

    #[test]
    fn topic_matcher_agrees_with_reference(
        attr_policies in vec(pattern(true, false), 0..4),
        body_policies in vec(pattern(true, true), 0..4),
        attrs in btree_map(key(), prop_oneof![
            string().prop_map(SnsAttribute::String),
            number().prop_map(|n| SnsAttribute::Number(n.to_string())),
            vec(string(), 0..3).prop_map(SnsAttribute::StringArray),
        ], 0..4),
        body in event(),
    ) {
        let mut all: Vec<(usize, &Value, FilterPolicyScope, Pattern)> = Vec::new();
        for (i, p) in attr_policies.iter().enumerate() {
            if let Ok(parsed) = Pattern::parse(p, Dialect::SnsAttributes) {
                all.push((i, p, FilterPolicyScope::MessageAttributes, parsed));
            }
        }
        for (i, p) in body_policies.iter().enumerate() {
            if let Ok(parsed) = Pattern::parse(p, Dialect::SnsBody) {
                all.push((100 + i, p, FilterPolicyScope::MessageBody, parsed));
            }
        }
        let m = TopicMatcher::compile(all.iter().map(|(i, p, s, _)| (*i, *p, *s))).unwrap();
        let attr_fields = reference::flatten_attributes(&attrs);
        let body_fields = reference::flatten_json(&body);
        let want: Vec<usize> = all
            .iter()
            .filter(|(_, _, s, p)| match s {
                FilterPolicyScope::MessageAttributes => reference::matches(p, &attr_fields),
                FilterPolicyScope::MessageBody => reference::matches(p, &body_fields),
            })
            .map(|(i, _, _, _)| *i)
            .collect();
        prop_assert_eq!(m.matches(&attrs, &body.to_string()), want);
    }

    #[test]
    fn arrays_of_objects_agree_with_reference(
        patterns in vec(btree_map(prop_oneof![Just("a"), Just("b")].prop_map(str::to_owned), leaf(false), 1..3), 1..5),
        elements in vec(btree_map(prop_oneof![Just("a"), Just("b")].prop_map(str::to_owned), scalar(), 0..3), 0..4),
        nested in any::<bool>(),
    ) {
        // Both fields live in elements of the same array: a match must take them from one element.
        let wrap = |v: Value| if nested { json!({"k": {"m": v}}) } else { json!({"k": v}) };
        let patterns: Vec<Value> = patterns.into_iter().map(|m| wrap(Value::Object(m.into_iter().collect()))).collect();
        let event = wrap(Value::Array(elements.into_iter().map(|m| Value::Object(m.into_iter().collect())).collect()));
        let valid: Vec<(usize, Pattern)> = patterns
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Pattern::parse(p, Dialect::EventBridge).ok().map(|parsed| (i, parsed)))
            .collect();
        let m = BusMatcher::compile(valid.iter().map(|(i, _)| (*i, &patterns[*i]))).unwrap();
        let fields = reference::flatten_json(&event);
        let want: Vec<usize> = valid.iter().filter(|(_, p)| reference::matches(p, &fields)).map(|(i, _)| *i).collect();
        prop_assert_eq!(m.matches(&event.to_string()), want, "event {}", event);
    }

    #[test]
    fn parser_never_panics(p in event_value()) {
        for d in [Dialect::EventBridge, Dialect::SnsAttributes, Dialect::SnsBody] {
            let _ = Pattern::parse(&p, d);
        }
    }
}
