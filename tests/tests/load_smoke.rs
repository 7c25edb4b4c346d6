use lb_agent::dataplane::{Capacities, Dataplane};
#[test]
fn loads() {
    let dp = Dataplane::load(Capacities { ring_size: 251, flow_table_size: 4096, ..Capacities::default() });
    match dp { Ok(_) => {}, Err(e) => { let mut s = format!("{e}"); let mut src = std::error::Error::source(&e); while let Some(x) = src { s += &format!(": {x}"); src = x.source(); } panic!("{s}") } }
}
