//! The tonic service: translation between protobuf and the store, nothing else.

use proto::common::v1::Money;
use proto::payments::v1::payments_service_server::PaymentsService;
use proto::payments::v1::{ListPlansRequest, ListPlansResponse, Plan};
use tonic::{Request, Response, Status};

use crate::store::Store;

pub struct PaymentsApi {
    store: Store,
}

impl PaymentsApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl PaymentsService for PaymentsApi {
    async fn list_plans(
        &self,
        _request: Request<ListPlansRequest>,
    ) -> Result<Response<ListPlansResponse>, Status> {
        let plans = self.store.active_plans().await?;
        Ok(Response::new(ListPlansResponse {
            plans: plans
                .into_iter()
                .map(|p| {
                    let crate::store::Plan {
                        id,
                        name,
                        price_cents,
                        currency,
                        interval,
                    } = p;
                    Plan {
                        id,
                        name,
                        price: Some(Money {
                            amount_minor: price_cents,
                            currency,
                        }),
                        interval,
                    }
                })
                .collect(),
        }))
    }
}
