use cqrs_ddd::spec::ReadModel;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ReadModel)]
#[read_model(collection = "orders", owner = custmer, tenant_required)]
struct Order {
    customer: String,
    status: String,
}

fn main() {
    let _ = Order::allow_list();
}
