//! Orders (a list with status filters, and an order's page with its history
//! and thumbnails), Images (processed thumbnails and rejections), and the
//! blobs the pages show, served with their sniffed type.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use switchyard_shared::events::OrderStatus;
use switchyard_shared::items::{
    item_type, order_key, ImageRecord, ImageStatus, Order, TableRecord,
};
use switchyard_shared::ports::BlobError;
use switchyard_shared::BlobKey;

use super::{blob_url, page, seg, PageError, PageResult};
use crate::console::state::Console;

const STATUSES: [OrderStatus; 4] = [
    OrderStatus::Placed,
    OrderStatus::Paid,
    OrderStatus::Shipped,
    OrderStatus::Cancelled,
];

#[derive(Debug, Default, Deserialize)]
pub struct StatusFilter {
    #[serde(default)]
    pub status: String,
}

/// Every item of one type in the table, read as `T` (unreadable ones skipped with a warning).
async fn all<T: TableRecord>(console: &Console) -> anyhow::Result<Vec<T>> {
    let items = console.table.scan().await?;
    Ok(items
        .iter()
        .filter(|i| item_type(i) == Some(T::TYPE))
        .filter_map(|i| {
            T::from_item(i)
                .inspect_err(|e| tracing::warn!(error = %e, "console: unreadable item"))
                .ok()
        })
        .collect())
}

pub async fn orders_page(
    State(console): State<Console>,
    Query(filter): Query<StatusFilter>,
) -> PageResult {
    let mut orders: Vec<Order> = all(&console).await?;
    let total = orders.len();
    if !filter.status.is_empty() {
        orders.retain(|o| o.status.as_str() == filter.status);
    }
    orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    let shown = orders.len().min(500);
    page(
        "Orders",
        "orders",
        html! {
            p.filters {
                a href="/console/orders" class=[filter.status.is_empty().then_some("active")] { "all (" (total) ")" }
                @for s in STATUSES {
                    " " a href=(format!("/console/orders?status={}", s.as_str())) class=[(filter.status == s.as_str()).then_some("active")] { (s.as_str()) }
                }
            }
            p.hint { (orders.len()) " order(s)" @if shown < orders.len() { ", the first " (shown) " shown" } "." }
            table.orders {
                thead { tr { th { "order" } th { "status" } th { "paid" } th { "customer" } th { "total" } th { "version" } } }
                tbody {
                    @for o in &orders[..shown] {
                        tr data-order-id=(o.order_id) {
                            td { a href=(format!("/console/orders/{}", seg(&o.order_id))) { (o.order_id) } }
                            td { (o.status.as_str()) }
                            td { @if o.paid { "yes" } @else { "no" } }
                            td { (o.customer_id) }
                            td { (money(o.total_cents, &o.currency)) }
                            td { (o.version) }
                        }
                    }
                }
            }
        },
    )
}

fn money(cents: u64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, cents % 100)
}

pub async fn order_page(
    State(console): State<Console>,
    Path(order_id): Path<String>,
) -> PageResult {
    let items = console.table.query(&order_key(&order_id).pk, None).await?;
    let mut order = None;
    let mut images = Vec::new();
    for item in &items {
        match item_type(item) {
            Some(Order::TYPE) => order = Some(Order::from_item(item)?),
            Some(ImageRecord::TYPE) => images.push(ImageRecord::from_item(item)?),
            _ => {}
        }
    }
    let order = order.ok_or_else(|| PageError::not_found(format!("no order {order_id} (yet)")))?;
    let history = console
        .recorder
        .as_ref()
        .map(|r| r.order_history(&order_id));
    page(
        &format!("Order {order_id}"),
        "orders",
        html! {
            dl.order {
                dt { "status" } dd data-field="status" { (order.status.as_str()) }
                dt { "paid" } dd { @if order.paid { "yes" } @else { "no" } }
                dt { "customer" } dd { (order.customer_id) }
                dt { "total" } dd { (money(order.total_cents, &order.currency)) }
                dt { "version" } dd { (order.version) }
                @if let Some(r) = &order.cancel_reason { dt { "cancelled because" } dd { (r) } }
                @if let Some(c) = &order.carrier { dt { "carrier" } dd { (c) " " (order.tracking_number.as_deref().unwrap_or("")) } }
            }
            h2 { "Items" }
            ul { @for i in &order.items { li { (i.quantity) " × " (i.sku) " at " (money(i.unit_price_cents, &order.currency)) } } }
            h2 { "Images" }
            @if images.is_empty() { p.hint { "No processed images yet." } }
            div.gallery { @for img in &images { (image_card(img)) } }
            h2 { "State history" }
            @match &history {
                Some(history) => {
                    p.hint { "Every event of this order the console has seen since it started, with what the handlers did with it." }
                    (super::events::history(history))
                }
                None => p.hint { (super::NO_RECORDER) },
            }
        },
    )
}

fn image_card(img: &ImageRecord) -> maud::Markup {
    html! {
        figure.image data-image-id=(img.image_id) data-status=(if img.status == ImageStatus::Ready { "ready" } else { "rejected" }) {
            @if img.status == ImageStatus::Ready {
                @for v in img.variants.iter().filter(|v| v.width <= 128) {
                    img.thumb src=(blob_url(&v.key)) width=(v.width) height=(v.height) alt=(format!("thumbnail of image {}", img.image_id)) loading="lazy";
                }
                figcaption { a href=(format!("/console/orders/{}", seg(&img.order_id))) { (img.order_id) } " · " (img.variants.len()) " variants" }
            } @else {
                div.rejected { "rejected: " (img.reject_code.as_deref().unwrap_or("?")) }
                figcaption {
                    a href=(format!("/console/orders/{}", seg(&img.order_id))) { (img.order_id) }
                    " · " span.reason { (img.reject_reason.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}

pub async fn images_page(State(console): State<Console>) -> PageResult {
    let images: Vec<ImageRecord> = all(&console).await?;
    let (ready, rejected): (Vec<&ImageRecord>, Vec<&ImageRecord>) =
        images.iter().partition(|i| i.status == ImageStatus::Ready);
    page(
        "Images",
        "images",
        html! {
            h2 { "Processed (" (ready.len()) ")" }
            div.gallery { @for i in ready.iter().take(500) { (image_card(i)) } }
            h2 { "Rejected (" (rejected.len()) ")" }
            div.gallery { @for i in rejected.iter().take(500) { (image_card(i)) } }
        },
    )
}

/// A blob, as the type its bytes are (never the type it was stored with),
/// with `nosniff`; anything that is not an image is a download.
pub async fn blob(
    State(console): State<Console>,
    Path(key): Path<String>,
) -> Result<Response, PageError> {
    let key = BlobKey::new(key).map_err(|e| PageError::bad_request(e.to_string()))?;
    let blob = match console.blobs.get(&key).await {
        Ok(b) => b,
        Err(BlobError::NotFound(_)) => return Err(PageError::not_found("no such blob")),
        Err(e) => return Err(e.into()),
    };
    let sniffed = switchyard_producer::api::image_type(&blob.bytes);
    let mut response = blob.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(sniffed.unwrap_or("application/octet-stream")),
    );
    if sniffed.is_none() {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(response)
}
