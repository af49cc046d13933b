//! Links the release binary with the code it runs while idle first
//! (hack/code-layout/README.md).

#[path = "../hack/code-layout/link_order.rs"]
mod link_order;

fn main() {
    link_order::link_in_idle_order("scheduler");
}
