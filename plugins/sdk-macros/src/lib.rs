//! Derive macros of the Valhalla guest SDK: `#[derive(Validate)]` turns per-field
//! `#[validate(...)]` rules into a `valhalla_sdk::Validate` impl.
//!
//! The rules use the `validator` crate's spelling where it has one (`length`, `range`,
//! `custom`, `nested`), so `schemars` reads the same attributes into the JSON Schema
//! (`maxLength`, `minimum` …) and a rule is written once for both.
//!
//! | rule | applies to | checks |
//! |---|---|---|
//! | `length(min = a, max = b)` | strings (characters), lists (items), their `Option`s | the count is in range |
//! | `bytes(max = n)` | strings | the UTF-8 length is at most `n` |
//! | `range(min = a, max = b)` | integers and their `Option`s | the value is in range |
//! | `identifier(max = n)` | strings | 1..=`n` of `A-Z a-z 0-9 _ - . :`, starting alphanumeric |
//! | `one_of = LIST` | strings and their `Option`s | the text is one of `LIST` (a `[&str; N]` or `&[&str]`) |
//! | `rfc3339` | strings and their `Option`s | the text is an RFC 3339 timestamp |
//! | `custom(function = path)` | anything | `path(&value) -> Result<(), impl Into<String>>`, the error its message |
//! | `nested` | a type that is itself `Validate` | its rules, with field names prefixed |
//!
//! On the struct, `#[validate(with = path)]` adds a cross-field check
//! `path(&self, &mut Validator)`, run after the field rules. `Option` fields are checked only
//! when present: a `custom` function of an `Option<T>` field is given the `&T` inside, as
//! the `validator` crate does. Deref applies, so for a `String` (or `Option<String>`) field
//! the function may take `&str`, for a `Vec<T>` field `&[T]`.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, Meta, Token, parse_macro_input};

/// Derive `valhalla_sdk::Validate` from `#[validate(...)]` field rules (see the crate docs).
#[proc_macro_derive(Validate, attributes(validate))]
pub fn derive_validate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Validate)] supports structs with named fields",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Validate)] supports structs with named fields",
        ));
    };
    let mut checks = Vec::new();
    let mut refinements = Vec::new();
    for field in &fields.named {
        let Some(ident) = &field.ident else { continue };
        let name = ident.to_string().trim_start_matches("r#").to_string();
        for rule in rules(&field.attrs)? {
            checks.push(field_check(&rule, ident, &name, is_option(&field.ty))?);
            refinements.extend(schema_refinement(&rule, &name, is_option(&field.ty))?);
        }
    }
    for rule in rules(&input.attrs)? {
        checks.push(struct_check(&rule)?);
    }
    if checks.is_empty() {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Validate)] without any #[validate(...)] rule: use `Json<T>` for a body with nothing to check",
        ));
    }
    let ty = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::valhalla_sdk::Validate for #ty #ty_generics #where_clause {
            fn validate(&self, __v: &mut ::valhalla_sdk::Validator) {
                #(#checks)*
            }
            fn refine_schema(__s: &mut ::valhalla_sdk::schema::Refine<'_>) {
                #(#refinements)*
            }
        }
    })
}

/// The rules of every `#[validate(...)]` attribute.
fn rules(attrs: &[syn::Attribute]) -> syn::Result<Vec<Meta>> {
    let mut out = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("validate")) {
        let list = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
        out.extend(list);
    }
    Ok(out)
}

/// `key = value` pairs of a rule such as `length(min = 1, max = 128)`.
fn args(meta: &Meta) -> syn::Result<Vec<(String, Expr)>> {
    let Meta::List(list) = meta else {
        return Ok(Vec::new());
    };
    let pairs = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
    pairs
        .into_iter()
        .map(|m| match m {
            Meta::NameValue(nv) => Ok((path_name(&nv.path), nv.value)),
            other => Err(syn::Error::new(other.span(), "expected `name = value`")),
        })
        .collect()
}

fn arg(args: &[(String, Expr)], name: &str) -> Option<Tokens> {
    args.iter().find(|(n, _)| n == name).map(|(_, e)| quote!(#e))
}

fn path_name(path: &syn::Path) -> String {
    path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default()
}

/// A callable path given as `function = path` or `function = "path"`.
fn callable(meta: &Meta, key: &str) -> syn::Result<Tokens> {
    let expr = match meta {
        Meta::NameValue(nv) => nv.value.clone(),
        _ => args(meta)?
            .into_iter()
            .find(|(n, _)| n == key)
            .map(|(_, e)| e)
            .ok_or_else(|| syn::Error::new(meta.span(), format!("expected `{key} = path`")))?,
    };
    match expr {
        Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => {
            let path: syn::Path = s.parse()?;
            Ok(quote!(#path))
        }
        other => Ok(quote!(#other)),
    }
}

/// Is `ty` spelled `Option<…>` (also `core::option::Option<…>`)?
fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

fn field_check(rule: &Meta, ident: &syn::Ident, name: &str, option: bool) -> syn::Result<Tokens> {
    let kind = path_name(rule.path());
    let a = args(rule)?;
    let min = arg(&a, "min").map_or(quote!(None), |m| quote!(Some((#m) as i64)));
    let max = arg(&a, "max").map_or(quote!(None), |m| quote!(Some((#m) as i64)));
    let need_max = || {
        arg(&a, "max")
            .ok_or_else(|| syn::Error::new(rule.span(), format!("`{kind}` needs `max = …`")))
    };
    Ok(match kind.as_str() {
        "length" => quote! {
            __v.length_of(#name, ::valhalla_sdk::validate::Counted::count(&self.#ident), #min, #max);
        },
        "range" => quote! {
            __v.range_of(#name, ::valhalla_sdk::validate::Numeric::number(&self.#ident), #min, #max);
        },
        "bytes" => {
            let max = need_max()?;
            quote! {
                __v.bytes_of(#name, ::valhalla_sdk::validate::Text::text(&self.#ident), (#max) as usize);
            }
        }
        "identifier" => {
            let max = need_max()?;
            quote! {
                if let Some(__s) = ::valhalla_sdk::validate::Text::text(&self.#ident) {
                    __v.identifier(#name, __s, (#max) as usize);
                }
            }
        }
        "one_of" => {
            let list = callable(rule, "one_of")?;
            quote! {
                __v.one_of(#name, ::valhalla_sdk::validate::Text::text(&self.#ident), &#list);
            }
        }
        "rfc3339" => quote! {
            __v.rfc3339(#name, ::valhalla_sdk::validate::Text::text(&self.#ident));
        },
        "custom" if option => {
            let f = callable(rule, "function")?;
            quote! {
                if let Some(__x) = &self.#ident
                    && let Err(__m) = #f(__x)
                {
                    __v.error(#name, __m);
                }
            }
        }
        "custom" => {
            let f = callable(rule, "function")?;
            quote! {
                if let Err(__m) = #f(&self.#ident) {
                    __v.error(#name, __m);
                }
            }
        }
        "nested" => quote! {
            __v.nested(#name, &self.#ident);
        },
        other => {
            return Err(syn::Error::new(
                rule.span(),
                format!(
                    "unknown validate rule `{other}` (length, bytes, range, identifier, one_of, rfc3339, custom, nested)"
                ),
            ));
        }
    })
}

/// What a rule adds to the field's JSON Schema beyond what `schemars` reads itself
/// (`length` and `range` it reads; `bytes`, `custom` and `with` no schema can state).
fn schema_refinement(rule: &Meta, name: &str, option: bool) -> syn::Result<Option<Tokens>> {
    let a = args(rule)?;
    Ok(match path_name(rule.path()).as_str() {
        "identifier" => {
            arg(&a, "max").map(|max| quote! { __s.identifier(#name, (#max) as usize); })
        }
        "one_of" => {
            let list = callable(rule, "one_of")?;
            Some(quote! { __s.one_of(#name, &#list, #option); })
        }
        "rfc3339" => Some(quote! { __s.rfc3339(#name); }),
        _ => None,
    })
}

fn struct_check(rule: &Meta) -> syn::Result<Tokens> {
    match path_name(rule.path()).as_str() {
        "with" => {
            let f = callable(rule, "with")?;
            Ok(quote! { #f(self, __v); })
        }
        other => Err(syn::Error::new(
            rule.span(),
            format!("unknown struct-level validate rule `{other}` (with = path)"),
        )),
    }
}
