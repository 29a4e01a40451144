"""The shop's pages. Each action builds a command from a form and hands it to the domain."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from bookshelf import selectors
from bookshelf.forms import (
    AddBookForm,
    AdjustStockForm,
    OrderActionForm,
    PlaceOrderForm,
    response_status,
)
from bookshelf.models import Book, OrderStatus
from bookshelf.submissions import submit
from inspector.exceptions import DomainError

ORDERS_PER_PAGE = 25
NOTIFICATIONS_PER_PAGE = 50


# Catalog ----------------------------------------------------------------------------------


@login_required
@require_GET
def catalog(request):
    return _catalog(request, AddBookForm())


@login_required
@require_POST
def book_add(request):
    form = AddBookForm(request.POST)
    if _run(request, form):
        if not request.htmx:
            return redirect("bookshelf:catalog")
        form = AddBookForm()
    return _catalog(request, form, status=response_status(form))


def _catalog(request, form, status=200):
    template = "bookshelf/catalog-section.html" if request.htmx else "bookshelf/catalog.html"
    context = {"books": selectors.book_list(), "form": form}
    return render(request, template, context, status=status)


@login_required
@require_GET
def book_detail(request, book_id):
    book = selectors.book_list().filter(pk=book_id).first()
    if book is None:
        return _not_found(request, "book")
    context = {"book": book, "events": selectors.book_events(book=book)}
    return render(request, "bookshelf/book-detail.html", context)


# Orders -----------------------------------------------------------------------------------


@login_required
@require_GET
def order_list(request):
    return _orders(request, PlaceOrderForm())


@login_required
@require_POST
def order_place(request):
    if "add_line" in request.POST:
        return _orders(request, PlaceOrderForm.with_another_line(request.POST))
    form = PlaceOrderForm(request.POST)
    if _run(request, form):
        if not request.htmx:
            return redirect("bookshelf:order-list")
        form = PlaceOrderForm()
    return _orders(request, form, status=form.status())


def _orders(request, form, status=200):
    status_filter = request.GET.get("status") or ""
    page = Paginator(selectors.order_list(status=status_filter), ORDERS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    template = "bookshelf/orders-section.html" if request.htmx else "bookshelf/order-list.html"
    context = {
        "page": page,
        "form": form,
        "statuses": OrderStatus.choices,
        "status_filter": status_filter,
    }
    return render(request, template, context, status=status)


@login_required
@require_GET
def order_detail(request, order_id):
    order = selectors.order_with_items(order_id)
    if order is None:
        return _not_found(request, "order")
    return _order_page(request, order)


def _order_page(request, order, *, error_form=None, status=200):
    context = {
        "order": order,
        "history": selectors.order_history(order=order),
        "notifications": selectors.notification_list(order=order),
        "error_form": error_form,
    }
    return render(request, "bookshelf/order-detail.html", context, status=status)


@login_required
@require_POST
def order_action(request, order_id, action):
    """Confirm or ship one order: htmx swaps its row, a plain POST redirects back."""
    order = selectors.order_with_items(order_id)
    if order is None:
        return _not_found(request, "order")
    form = OrderActionForm(request.POST, order=order, action=action)
    done = _run(request, form)
    order = selectors.order_with_items(order_id) or order
    if request.htmx:
        context = {"order": order, "error_form": None if done else form}
        return render(request, "bookshelf/order-row.html", context, status=response_status(form))
    if done:
        return HttpResponseRedirect(_next_url(request, order))
    return _order_page(request, order, error_form=form, status=response_status(form))


def _next_url(request, order):
    """Where the page asked to go back to: a path on this site, else the order's page."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("bookshelf:order-detail", args=[order.id])


# Inventory --------------------------------------------------------------------------------


@login_required
@require_GET
def inventory(request):
    context = {"inventories": selectors.inventory_list(), "low_stock": selectors.LOW_STOCK}
    return render(request, "bookshelf/inventory.html", context)


@login_required
@require_POST
def inventory_adjust(request, book_id):
    """Restock one book (AdjustStock): htmx swaps its row, a plain POST redirects back."""
    book = Book.objects.filter(pk=book_id).first()
    if book is None:
        return _not_found(request, "book")
    form = AdjustStockForm(request.POST, book=book)
    done = _run(request, form)
    if not request.htmx and done:
        return redirect("bookshelf:inventory")
    status = response_status(form)
    if request.htmx:
        context = {
            "inventory": selectors.inventory_list().filter(book=book).first(),
            "book": book,
            "form": None if done else form,
            "low_stock": selectors.LOW_STOCK,
        }
        return render(request, "bookshelf/inventory-row.html", context, status=status)
    context = {
        "inventories": selectors.inventory_list(),
        "low_stock": selectors.LOW_STOCK,
        "failed_form": form,
        "failed_book": book,
    }
    return render(request, "bookshelf/inventory.html", context, status=status)


# Notifications ----------------------------------------------------------------------------


@login_required
@require_GET
def notification_list(request):
    page = Paginator(selectors.notification_list(), NOTIFICATIONS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "bookshelf/notification-list.html", {"page": page})


# Helpers ----------------------------------------------------------------------------------


def _not_found(request, what):
    """A 404 in the layout, or for htmx a row that says the thing is gone."""
    template = "bookshelf/row-missing.html" if request.htmx else "bookshelf/not-found.html"
    return render(request, template, {"what": what}, status=404)


def _run(request, form):
    """Submit the form's command once; on success say what it raised, else show why not."""
    if not form.is_valid():
        return False
    try:
        receipt = submit(form.command(), token=form.cleaned_data["token"])
    except DomainError as exc:
        form.add_domain_error(exc)
        return False
    level = messages.WARNING if receipt.failed else messages.SUCCESS
    messages.add_message(
        request, level, render_to_string("bookshelf/receipt.html", {"receipt": receipt})
    )
    return True
