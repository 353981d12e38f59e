//! `template.yaml`, the SAM template that deploys Jobline, loaded for the
//! tests that check it against the code (`tests/tests/template.rs`) and for
//! any other test that needs a value the template sets.

use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The path of `template.yaml`, from this crate.
pub const TEMPLATE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
/// The resource types the checks look up.
pub const FUNCTION: &str = "AWS::Serverless::Function";
pub const QUEUE: &str = "AWS::SQS::Queue";
pub const TABLE: &str = "AWS::DynamoDB::Table";
pub const EVENT_SOURCE_MAPPING: &str = "AWS::Lambda::EventSourceMapping";
pub const ALARM: &str = "AWS::CloudWatch::Alarm";

/// `template.yaml` as JSON, with CloudFormation's short tags in long form
/// (`!Ref X` as `{"Ref": "X"}`, `!GetAtt A.B` as `{"Fn::GetAtt": ["A", "B"]}`,
/// `!Sub s` as `{"Fn::Sub": s}`), so a check does not depend on the style.
#[derive(Debug, Clone)]
pub struct Template(pub Value);

impl Template {
    /// Reads and converts `template.yaml`; panics if it is not YAML.
    pub fn load() -> Self {
        let text = std::fs::read_to_string(TEMPLATE_PATH).expect("read template.yaml");
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml is YAML");
        Self(to_json(yaml))
    }

    pub fn resource(&self, name: &str, kind: &str) -> &Value {
        let resource = &self.0["Resources"][name];
        assert_eq!(resource["Type"], kind, "resource {name}");
        resource
    }

    pub fn properties(&self, name: &str, kind: &str) -> &Value {
        &self.resource(name, kind)["Properties"]
    }

    pub fn resources_of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> {
        self.0["Resources"]
            .as_object()
            .expect("Resources")
            .iter()
            .filter(move |(_, resource)| resource["Type"] == kind)
            .map(|(name, resource)| (name.as_str(), resource))
    }

    pub fn parameter(&self, name: &str) -> &Value {
        let parameter = &self.0["Parameters"][name];
        assert!(
            parameter.is_object(),
            "template.yaml has no parameter {name}"
        );
        parameter
    }

    pub fn default_of(&self, parameter: &str) -> u64 {
        number(&self.parameter(parameter)["Default"])
    }

    /// A parameter's `AllowedValues`, as numbers.
    pub fn allowed_numbers(&self, parameter: &str) -> Vec<u64> {
        let allowed = as_list(&self.parameter(parameter)["AllowedValues"]);
        assert!(!allowed.is_empty(), "{parameter} has no AllowedValues");
        allowed.into_iter().map(number).collect()
    }

    /// A value as CloudFormation would resolve it, with `parameters` for the
    /// parameters that it names (their defaults for the others): a literal,
    /// a `Ref` to a parameter, or an `Fn::FindInMap` of such values. Panics
    /// on anything else, or on a key the mapping lacks (which CloudFormation
    /// would refuse at deploy time).
    pub fn resolve(&self, value: &Value, parameters: &HashMap<&str, &str>) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => {
                let name = map["Ref"].as_str().expect("Ref of a name");
                match parameters.get(name) {
                    Some(given) => (*given).to_owned(),
                    None => match &self.parameter(name)["Default"] {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        other => panic!("parameter {name}: unexpected Default {other}"),
                    },
                }
            }
            Value::Object(map) if map.len() == 1 && map.contains_key("Fn::FindInMap") => {
                let keys = map["Fn::FindInMap"].as_array().expect("FindInMap list");
                assert_eq!(keys.len(), 3, "Fn::FindInMap [map, key, key]: {value}");
                let [mapping, first, second] =
                    [0, 1, 2].map(|i| self.resolve(&keys[i], parameters));
                let found = &self.0["Mappings"][&mapping][&first][&second];
                assert!(
                    !found.is_null(),
                    "mapping {mapping} has no {first}.{second}"
                );
                self.resolve(found, parameters)
            }
            other => panic!("cannot resolve {other}"),
        }
    }

    /// [`Template::resolve`] of a whole number.
    pub fn resolve_number(&self, value: &Value, parameters: &HashMap<&str, &str>) -> u64 {
        number(&Value::String(self.resolve(value, parameters)))
    }

    /// The properties of the one event source mapping that feeds `function`
    /// from `source` (its `EventSourceArn`); panics unless there is exactly
    /// one.
    pub fn event_source_mapping(&self, function: &str, source: &Value) -> &Value {
        let found: Vec<&Value> = self
            .resources_of_type(EVENT_SOURCE_MAPPING)
            .map(|(_, mapping)| &mapping["Properties"])
            .filter(|properties| {
                properties["FunctionName"] == reference(function)
                    && &properties["EventSourceArn"] == source
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "event source mappings of {function} from {source}"
        );
        found[0]
    }

    /// A function's property, or else the one in `Globals.Function`.
    pub fn function_property(&self, function: &str, property: &str) -> &Value {
        let own = &self.properties(function, FUNCTION)[property];
        if own.is_null() {
            &self.0["Globals"]["Function"][property]
        } else {
            own
        }
    }

    /// A function's environment variables: those of `Globals.Function`
    /// overlaid with its own, as SAM merges them.
    pub fn function_environment(&self, function: &str) -> Map<String, Value> {
        let variables = |properties: &Value| {
            properties["Environment"]["Variables"]
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        let mut environment = variables(&self.0["Globals"]["Function"]);
        environment.extend(variables(self.properties(function, FUNCTION)));
        environment
    }

    /// A function's environment as the deployed function would see it, with
    /// `parameters` for the parameters that it names (their defaults for the
    /// others) and `<Name>` for references to resources.
    pub fn resolved_environment(
        &self,
        function: &str,
        parameters: &HashMap<&str, &str>,
    ) -> HashMap<String, String> {
        self.function_environment(function)
            .into_iter()
            .filter_map(|(name, value)| {
                // `!If [condition, value, !Ref AWS::NoValue]`: the value, or
                // no variable at all.
                let value = match value["Fn::If"].as_array() {
                    Some(branches) => {
                        let [condition, then, otherwise] = branches.as_slice() else {
                            panic!("{function} {name}: Fn::If [condition, then, else]: {value}");
                        };
                        let condition = condition.as_str().expect("a condition's name");
                        let chosen = if self.condition(condition, parameters) {
                            then
                        } else {
                            otherwise
                        };
                        if chosen["Ref"] == "AWS::NoValue" {
                            return None;
                        }
                        chosen.clone()
                    }
                    None => value,
                };
                let resolved = match (&value, value["Ref"].as_str()) {
                    (Value::String(literal), _) => literal.clone(),
                    (_, Some(parameter)) if parameters.contains_key(parameter) => {
                        parameters[parameter].to_owned()
                    }
                    // Its default, a number or a string ("false").
                    (_, Some(target)) if self.0["Parameters"][target].is_object() => {
                        self.resolve(&value, parameters)
                    }
                    (_, Some(resource)) => {
                        assert!(
                            self.0["Resources"][resource].is_object(),
                            "{function} {name} refers to unknown {resource}"
                        );
                        format!("<{resource}>")
                    }
                    _ => panic!("{function} {name}: unexpected value {value}"),
                };
                Some((name, resolved))
            })
            .collect()
    }

    /// Whether condition `name` of `Conditions` holds with `parameters`
    /// (their defaults for the others): `Fn::Equals` of resolvable values,
    /// `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`.
    pub fn condition(&self, name: &str, parameters: &HashMap<&str, &str>) -> bool {
        let condition = &self.0["Conditions"][name];
        assert!(!condition.is_null(), "no condition {name}");
        self.holds(condition, parameters)
    }

    fn holds(&self, condition: &Value, parameters: &HashMap<&str, &str>) -> bool {
        let operands = |function: &str| condition[function].as_array();
        if let Some([left, right]) = operands("Fn::Equals").map(Vec::as_slice) {
            self.resolve(left, parameters) == self.resolve(right, parameters)
        } else if let Some([inner]) = operands("Fn::Not").map(Vec::as_slice) {
            !self.holds(inner, parameters)
        } else if let Some(all) = operands("Fn::And") {
            all.iter().all(|c| self.holds(c, parameters))
        } else if let Some(any) = operands("Fn::Or") {
            any.iter().any(|c| self.holds(c, parameters))
        } else if let Some(other) = condition["Condition"].as_str() {
            self.condition(other, parameters)
        } else {
            panic!("cannot evaluate condition {condition}")
        }
    }
}

/// A YAML value as JSON, with CloudFormation's short tags in long form.
pub fn to_json(yaml: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Yaml;
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => json!(u),
            (None, Some(i), _) => json!(i),
            (None, None, f) => json!(f),
        },
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| match key {
                    Yaml::String(key) => (key, to_json(value)),
                    other => panic!("template.yaml has a non-string key {other:?}"),
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            match (name, value) {
                ("Ref" | "Condition", value) => json!({ name: value }),
                ("GetAtt", Value::String(path)) => {
                    let (resource, attribute) =
                        path.split_once('.').expect("!GetAtt Resource.Attribute");
                    json!({ "Fn::GetAtt": [resource, attribute] })
                }
                (function, value) => json!({ format!("Fn::{function}"): value }),
            }
        }
    }
}

/// A number written as a YAML number or a numeric string.
pub fn number(value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("expected a whole number, got {value}"))
}

/// `{"Ref": target}`.
pub fn reference(target: &str) -> Value {
    json!({ "Ref": target })
}

/// `{"Fn::GetAtt": [resource, attribute]}`.
pub fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

/// Every IAM policy statement under `node`.
pub fn statements(node: &Value) -> Vec<&Value> {
    match node {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value) {
                ("Statement", Value::Array(list)) => list.iter().collect(),
                ("Statement", single) => vec![single],
                _ => statements(value),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(statements).collect(),
        _ => Vec::new(),
    }
}

/// A CloudFormation value that may be one item or a list, as a list.
pub fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        single => vec![single],
    }
}

impl Template {
    /// The `(action, resource)` pairs the IAM role `role` allows.
    pub fn role_grants(&self, role: &str) -> std::collections::BTreeSet<(String, String)> {
        statements(&self.properties(role, "AWS::IAM::Role")["Policies"])
            .into_iter()
            .flat_map(|statement| {
                assert_eq!(statement["Effect"], "Allow", "{role}: {statement}");
                let resources = as_list(&statement["Resource"]);
                as_list(&statement["Action"])
                    .into_iter()
                    .flat_map(move |action| {
                        resources.clone().into_iter().map(move |resource| {
                            (
                                action.as_str().expect("action").to_owned(),
                                resource.to_string(),
                            )
                        })
                    })
            })
            .collect()
    }
}
