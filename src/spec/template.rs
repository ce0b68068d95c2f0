//! Scalar templating: string values may hold minijinja expressions over `stack`, `region`,
//! `account_id` and `vars.*`. Only values are templated, never the YAML structure.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};

/// Work a template may do (minijinja instructions): far more than any value needs, far less
/// than a runaway loop takes; validation stays instant whatever the spec says.
const TEMPLATE_FUEL: u64 = 50_000;
/// The longest value a template may produce.
const TEMPLATE_MAX_OUTPUT: usize = 64 * 1024;

pub struct Templater {
    env: Environment<'static>,
    ctx: minijinja::Value,
    /// Every name a template may use, e.g. `stack`, `vars.instance_type`.
    defined: Vec<String>,
}

/// Does this string hold template syntax?
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

impl Templater {
    pub fn new(
        stack: &str,
        region: &str,
        account_id: &str,
        vars: &BTreeMap<String, String>,
    ) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_recursion_limit(16);
        // Values are not HTML: never escape.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let ctx = minijinja::context! {
            stack => stack,
            region => region,
            account_id => account_id,
            vars => vars,
        };
        let mut defined: Vec<String> = ["stack", "region", "account_id"].map(String::from).into();
        defined.extend(vars.keys().map(|k| format!("vars.{k}")));
        Templater { env, ctx, defined }
    }

    /// Renders `s` if it holds template syntax; returns it unchanged otherwise.
    pub fn render(&self, s: &str) -> Result<String, String> {
        if !is_template(s) {
            return Ok(s.to_string());
        }
        let out = self.env.render_str(s, &self.ctx).map_err(|e| {
            if e.kind() == minijinja::ErrorKind::UndefinedError {
                if let Some(msg) = self.undefined(s) {
                    return msg;
                }
            }
            describe(&e)
        })?;
        if out.len() > TEMPLATE_MAX_OUTPUT {
            return Err(format!(
                "the template renders {} bytes; at most {TEMPLATE_MAX_OUTPUT} (templates are for short values)",
                out.len()
            ));
        }
        Ok(out)
    }

    /// Names the undefined variables of a template, and what is defined.
    fn undefined(&self, s: &str) -> Option<String> {
        let tmpl = self.env.template_from_str(s).ok()?;
        let mut missing: Vec<String> = tmpl
            .undeclared_variables(true)
            .into_iter()
            .filter(|v| !self.defined.contains(v) && v != "vars")
            .collect();
        missing.sort();
        if missing.is_empty() {
            return None;
        }
        let names = missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "undefined template variable {names} (defined: {}; set vars: or --var NAME=VALUE)",
            self.defined.join(", ")
        ))
    }
}

/// A one-line description of a template error, without minijinja's source dump.
fn describe(e: &minijinja::Error) -> String {
    let mut msg = match e.kind() {
        minijinja::ErrorKind::UndefinedError => "template refers to an undefined value".to_string(),
        minijinja::ErrorKind::OutOfFuel => format!(
            "the template does too much work (stopped after {TEMPLATE_FUEL} steps; templates are for short values)"
        ),
        _ => format!("template error: {}", e.kind()),
    };
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_context_and_reports_undefined() {
        let mut vars = BTreeMap::new();
        vars.insert("instance_type".to_string(), "t3.micro".to_string());
        let t = Templater::new("lab", "eu-west-1", "123456789012", &vars);
        assert_eq!(
            t.render("{{ vars.instance_type }}").as_deref(),
            Ok("t3.micro")
        );
        assert_eq!(
            t.render("{{ stack }}-{{ region }}-{{ account_id }}")
                .as_deref(),
            Ok("lab-eu-west-1-123456789012")
        );
        assert_eq!(t.render("plain <b>").as_deref(), Ok("plain <b>"));
        let err = t.render("{{ vars.missing }}").expect_err("undefined");
        assert!(err.contains("`vars.missing`"), "{err}");
        assert!(err.contains("vars.instance_type"), "{err}");
        assert!(t.render("{{ nope }}").is_err());
        assert!(t.render("{{ unclosed").is_err());
    }

    #[test]
    fn runaway_templates_are_stopped_with_a_clear_error() {
        let t = Templater::new("lab", "eu-west-1", "123456789012", &BTreeMap::new());
        let start = std::time::Instant::now();
        let loops =
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
        let err = t.render(loops).expect_err("runaway loop");
        assert!(err.contains("too much work"), "{err}");
        let err = t
            .render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}")
            .expect_err("endless recursion");
        assert!(!err.is_empty());
        let err = t
            .render("{% for a in range(60) %}{{ 'x' * 2000 }}{% endfor %}")
            .expect_err("huge output");
        assert!(err.contains("at most"), "{err}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
}
