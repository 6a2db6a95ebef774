//! `schema.graphql` is what frontend teams read; it must be exactly what the code serves.

#[test]
fn schema_graphql_matches_the_sdl_the_code_exports() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let checked_in = std::fs::read_to_string(path).expect("read schema.graphql");
    let exported = api::graphql::sdl();
    if checked_in != exported {
        let first_difference = checked_in
            .lines()
            .zip(exported.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| {
                format!(
                    "line {}:\n  schema.graphql: {a}\n  code:           {b}",
                    i + 1
                )
            })
            .unwrap_or_else(|| "one is a prefix of the other".to_owned());
        panic!(
            "schema.graphql differs from the schema the code serves ({first_difference}).\n\
             Regenerate it with: cargo run -p api -- print-schema > schema.graphql"
        );
    }
}
