"""Packing needs every item scanned at the bench first (orders/packing.py): tests that pack as a
person scan through the PDA station's own service, as a packer would."""

from orders.access import Actor
from orders.models import Order
from workflows.frontline import packing as station


def scan_every_item(order: Order, user) -> None:
    """Scan each unit of each line (gifts included) at the packing station, as `user`."""
    for line in order.lines.select_related("product"):
        for _ in range(line.quantity):
            station.pack_scan(code=line.product.barcode, by=Actor.of(user), current=order.order_number)
