//! Field-level validation of request bodies: a [`Validate`] impl states the rules, the
//! [`Validator`] collects every broken one into a single 422.

use crate::alloc_prelude::*;

use crate::problem::{FieldError, Problem};

/// Checks beyond what the types already say, usually derived: `#[derive(Validate)]` with
/// `#[validate(...)]` rules on the fields (see [`valhalla_sdk_macros`]). A body with nothing
/// to check is read with [`Json`](crate::Json), which asks for no `Validate` at all.
///
/// A `custom(function = f)` rule calls `f(&self.field)`, or for an `Option<T>` field `f(&t)`
/// when it is present: for a `String` or `Option<String>` field `f` may take `&str` (deref),
/// for a `Vec<T>` field `&[T]`. `f` returns `Result<(), impl Into<String>>`, the error being
/// the field's message.
pub trait Validate {
    /// Record every broken rule in `v`.
    fn validate(&self, v: &mut Validator);

    /// State in the type's JSON Schema the rules `schemars` does not read (`identifier`,
    /// `one_of`, `rfc3339`), so the schema accepts what the rules accept; derived.
    fn refine_schema(_schema: &mut crate::schema::Refine<'_>)
    where
        Self: Sized,
    {
    }
}

/// Collects field errors.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
    /// the field path of the [`nested`](Self::nested) value being checked, `a.b.`
    prefix: String,
}

/// How many characters or items a field holds (`None` when an optional field is absent).
pub trait Counted {
    /// The count, and the unit it is counted in.
    fn count(&self) -> Option<(usize, &'static str)>;
}

impl Counted for String {
    fn count(&self) -> Option<(usize, &'static str)> {
        Some((self.chars().count(), "characters"))
    }
}

impl Counted for &str {
    fn count(&self) -> Option<(usize, &'static str)> {
        Some((self.chars().count(), "characters"))
    }
}

impl<T> Counted for Vec<T> {
    fn count(&self) -> Option<(usize, &'static str)> {
        Some((self.len(), "items"))
    }
}

impl<T: Counted> Counted for Option<T> {
    fn count(&self) -> Option<(usize, &'static str)> {
        self.as_ref().and_then(Counted::count)
    }
}

/// An integer field's value (`None` when an optional field is absent).
pub trait Numeric {
    /// The value widened to `i64`.
    fn number(&self) -> Option<i64>;
}

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            fn number(&self) -> Option<i64> {
                i64::try_from(*self).ok()
            }
        }
    )*};
}
numeric!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl<T: Numeric> Numeric for Option<T> {
    fn number(&self) -> Option<i64> {
        self.as_ref().and_then(Numeric::number)
    }
}

/// A text field's value (`None` when an optional field is absent).
pub trait Text {
    /// The text.
    fn text(&self) -> Option<&str>;
}

impl Text for String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Text for Option<String> {
    fn text(&self) -> Option<&str> {
        self.as_deref()
    }
}

impl Validator {
    /// Record `message` on `field`.
    pub fn error(&mut self, field: &str, message: impl Into<String>) -> &mut Self {
        let field = format!("{}{field}", self.prefix);
        self.errors.push(FieldError::new(field, message));
        self
    }

    /// Check `value`'s own rules, naming its fields `field.inner`.
    pub fn nested<T: Validate>(&mut self, field: &str, value: &T) -> &mut Self {
        let inner = format!("{}{field}.", self.prefix);
        let outer = core::mem::replace(&mut self.prefix, inner);
        value.validate(self);
        self.prefix = outer;
        self
    }

    /// A count (characters or items) lies in `min..=max`; an absent optional field passes.
    pub fn length_of(
        &mut self,
        field: &str,
        count: Option<(usize, &'static str)>,
        min: Option<i64>,
        max: Option<i64>,
    ) -> &mut Self {
        let Some((n, unit)) = count else { return self };
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        if let Some(min) = min
            && n < min
        {
            let message = match (min, unit) {
                (1, "characters") => "must not be empty".to_string(),
                (1, _) => "must have at least one item".to_string(),
                _ => format!("must be at least {min} {unit}"),
            };
            self.error(field, message);
        } else if let Some(max) = max
            && n > max
        {
            self.error(field, format!("must be at most {max} {unit}"));
        }
        self
    }

    /// An integer lies in `min..=max`; an absent optional field passes.
    pub fn range_of(
        &mut self,
        field: &str,
        value: Option<i64>,
        min: Option<i64>,
        max: Option<i64>,
    ) -> &mut Self {
        let Some(value) = value else { return self };
        let low = min.unwrap_or(i64::MIN);
        let high = max.unwrap_or(i64::MAX);
        if !(low..=high).contains(&value) {
            let message = match (min, max) {
                (Some(min), Some(max)) => format!("must be between {min} and {max}"),
                (Some(min), None) => format!("must be at least {min}"),
                _ => format!("must be at most {high}"),
            };
            self.error(field, message);
        }
        self
    }

    /// A text is at most `max` bytes of UTF-8; an absent optional field passes.
    pub fn bytes_of(&mut self, field: &str, value: Option<&str>, max: usize) -> &mut Self {
        if value.is_some_and(|v| v.len() > max) {
            self.error(field, format!("must be at most {max} bytes"));
        }
        self
    }

    /// A text is one of `allowed` (exactly, case matters); an absent optional field passes.
    pub fn one_of(&mut self, field: &str, value: Option<&str>, allowed: &[&str]) -> &mut Self {
        if value.is_some_and(|v| !allowed.contains(&v)) {
            let names: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
            self.error(field, format!("must be one of {}", names.join(", ")));
        }
        self
    }

    /// A text is an RFC 3339 timestamp; an absent optional field passes.
    pub fn rfc3339(&mut self, field: &str, value: Option<&str>) -> &mut Self {
        if value.is_some_and(|t| crate::clock::parse_rfc3339(t).is_none()) {
            self.error(field, "must be an RFC 3339 timestamp like 2026-11-23T08:00:00Z");
        }
        self
    }

    /// Record an error on `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: &str) -> &mut Self {
        if !ok {
            self.error(field, message);
        }
        self
    }

    /// `value` is 1..=`max` characters long.
    pub fn length(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        let n = value.chars().count();
        if n == 0 {
            self.error(field, "must not be empty");
        } else if n > max {
            self.error(field, format!("must be at most {max} characters"));
        }
        self
    }

    /// An optional value is at most `max` characters long.
    pub fn max_length(&mut self, field: &str, value: Option<&str>, max: usize) -> &mut Self {
        if let Some(v) = value
            && v.chars().count() > max
        {
            self.error(field, format!("must be at most {max} characters"));
        }
        self
    }

    /// An identifier: 1..=`max` of `A-Z a-z 0-9 _ - . :`, starting with a letter or digit.
    pub fn identifier(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        if value.is_empty() || value.len() > max {
            self.error(field, format!("must be 1 to {max} characters"));
        } else if !is_identifier(value) {
            self.error(
                field,
                "may contain only letters, digits, `_`, `-`, `.` and `:`, and must start with a letter or digit",
            );
        }
        self
    }

    /// `value` lies in `min..=max`.
    pub fn range(&mut self, field: &str, value: i64, min: i64, max: i64) -> &mut Self {
        if !(min..=max).contains(&value) {
            self.error(field, format!("must be between {min} and {max}"));
        }
        self
    }

    /// A 422 with every error, or Ok.
    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() { Ok(()) } else { Err(Problem::validation(self.errors)) }
    }

    /// Every broken rule of `value` as one 422, or Ok.
    pub fn of<T: Validate>(value: &T) -> Result<(), Problem> {
        let mut v = Validator::default();
        value.validate(&mut v);
        v.finish()
    }

    /// Check a value that is not a body on its own, e.g. a query parameter:
    /// `Validator::run(|v| v.identifier("environment", &env, 64))?` is a 422 with what the
    /// rules found, or Ok.
    pub fn run(rules: impl FnOnce(&mut Validator) -> &mut Validator) -> Result<(), Problem> {
        let mut v = Validator::default();
        rules(&mut v);
        v.finish()
    }
}

/// Letters, digits, `_ - . :`, starting with a letter or digit.
pub fn is_identifier(value: &str) -> bool {
    let mut chars = value.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_error() {
        let mut v = Validator::default();
        v.length("a", "", 5).identifier("b", "-bad", 10).range("c", 101, 0, 100);
        let p = v.finish().unwrap_err();
        assert_eq!(p.status, 422);
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["a", "b", "c"]);
    }

    #[test]
    fn run_checks_one_value() {
        assert!(Validator::run(|v| v.identifier("env", "dev", 64)).is_ok());
        let p = Validator::run(|v| v.identifier("env", "no spaces", 64)).unwrap_err();
        assert_eq!((p.status, p.errors[0].field.as_str()), (422, "env"));
    }

    #[test]
    fn one_of_names_the_allowed_values() {
        assert!(Validator::run(|v| v.one_of("mode", Some("on"), &["on", "off"])).is_ok());
        assert!(Validator::run(|v| v.one_of("mode", None, &["on", "off"])).is_ok());
        let p = Validator::run(|v| v.one_of("mode", Some("ON"), &["on", "off"])).unwrap_err();
        assert_eq!(p.errors[0].message, "must be one of `on`, `off`");
    }

    #[test]
    fn of_checks_a_whole_value() {
        struct Two;
        impl Validate for Two {
            fn validate(&self, v: &mut Validator) {
                v.error("a", "x").error("b", "y");
            }
        }
        let p = Validator::of(&Two).unwrap_err();
        assert_eq!((p.status, p.errors.len()), (422, 2));
    }

    #[test]
    fn timestamps() {
        assert!(Validator::run(|v| v.rfc3339("t", Some("2026-11-23T08:00:00Z"))).is_ok());
        assert!(Validator::run(|v| v.rfc3339("t", None)).is_ok());
        let p = Validator::run(|v| v.rfc3339("t", Some("yesterday"))).unwrap_err();
        assert_eq!(p.errors[0].field, "t");
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("site.name"));
        assert!(is_identifier("a:b-c_d"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("a b"));
        assert!(!is_identifier("_x"));
        assert!(!is_identifier("a/b"));
    }
}
