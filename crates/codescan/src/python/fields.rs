//! Field ids of the Python grammar, looked up once: `child_by_field_name` would compare
//! the name against every field of the grammar on each call (hot in the walk).

use std::sync::OnceLock;

macro_rules! fields {
    ($($name:ident),* $(,)?) => {
        pub(crate) struct Fields { $(pub $name: u16,)* }

        pub(crate) fn fields() -> &'static Fields {
            static FIELDS: OnceLock<Fields> = OnceLock::new();
            FIELDS.get_or_init(|| {
                let language: tree_sitter::Language = tree_sitter_python::LANGUAGE.into();
                Fields { $($name: language.field_id_for_name(stringify!($name)).map_or(0, |id| id.get()),)* }
            })
        }
    };
}

fields!(
    alias,
    condition,
    definition,
    body,
    arguments,
    attribute,
    function,
    key,
    left,
    module_name,
    name,
    object,
    operator,
    parameters,
    right,
    subscript,
    value
);
