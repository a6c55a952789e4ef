//! Field-level validation of request bodies: a [`Validate`] impl states the rules, the
//! [`Validator`] collects every broken one into a single 422.

use crate::alloc_prelude::*;

use crate::problem::{FieldError, Problem};

/// Checks beyond what the types already say. The default accepts everything.
pub trait Validate {
    fn validate(&self, _v: &mut Validator) {}
}

/// Collects field errors.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// Record an error on `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: &str) -> &mut Self {
        if !ok {
            self.errors.push(FieldError::new(field, message));
        }
        self
    }

    /// `value` is 1..=`max` characters long.
    pub fn length(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        let n = value.chars().count();
        if n == 0 {
            self.errors
                .push(FieldError::new(field, "must not be empty"));
        } else if n > max {
            self.errors.push(FieldError::new(
                field,
                format!("must be at most {max} characters"),
            ));
        }
        self
    }

    /// An optional value is at most `max` characters long.
    pub fn max_length(&mut self, field: &str, value: Option<&str>, max: usize) -> &mut Self {
        if let Some(v) = value
            && v.chars().count() > max
        {
            self.errors.push(FieldError::new(
                field,
                format!("must be at most {max} characters"),
            ));
        }
        self
    }

    /// An identifier: 1..=`max` of `A-Z a-z 0-9 _ - . :`, starting with a letter or digit.
    pub fn identifier(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        if value.is_empty() || value.len() > max {
            self.errors.push(FieldError::new(
                field,
                format!("must be 1 to {max} characters"),
            ));
        } else if !is_identifier(value) {
            self.errors.push(FieldError::new(
                field,
                "may contain only letters, digits, `_`, `-`, `.` and `:`, and must start with a letter or digit",
            ));
        }
        self
    }

    /// `value` lies in `min..=max`.
    pub fn range(&mut self, field: &str, value: i64, min: i64, max: i64) -> &mut Self {
        if !(min..=max).contains(&value) {
            self.errors.push(FieldError::new(
                field,
                format!("must be between {min} and {max}"),
            ));
        }
        self
    }

    /// A 422 with every error, or Ok.
    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(self.errors))
        }
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
        v.length("a", "", 5)
            .identifier("b", "-bad", 10)
            .range("c", 101, 0, 100);
        let p = v.finish().unwrap_err();
        assert_eq!(p.status, 422);
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["a", "b", "c"]);
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
