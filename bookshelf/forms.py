"""The shop's forms: each builds one command and shows the domain's errors next to the controls."""

import re
import uuid

from django import forms

from bookshelf.commands import AddBook, AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder
from bookshelf.selectors import book_choices
from bookshelf.submissions import DuplicateSubmission, already_submitted
from inspector.exceptions import ConcurrencyError, ObjectNotFound, ValidationError

# Error codes that mean "the store is not as this form saw it" rather than "bad input".
CONFLICT_CODES = frozenset({"stale", "duplicate", "conflict"})
_LIST_ITEM = re.compile(r"^(?P<list>\w+)\[(?P<index>\d+)\](?:\.(?P<field>\w+))?$")


def error_code(exc):
    """The form error code for a domain exception."""
    if isinstance(exc, DuplicateSubmission):
        return "duplicate"
    if isinstance(exc, ConcurrencyError):
        return "stale"
    if isinstance(exc, ObjectNotFound):
        return "not_found"
    if isinstance(exc, ValidationError):
        return "invalid"
    return "conflict"


def response_status(*forms_):
    """The HTTP status for forms after a submission: 200 when clean, else 404, 409 or 422.

    422 rather than 400 for bad input: django-htmx's debug script takes over 400 responses.
    """
    codes = set()
    for form in forms_:
        for errors in form.errors.as_data().values():
            codes.update(error.code for error in errors)
    if not codes:
        return 200
    if "not_found" in codes:
        return 404
    if codes & CONFLICT_CODES:
        return 409
    return 422


class SubmissionForm(forms.Form):
    """A form whose submission runs one command; its token makes a second submission harmless."""

    token = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages={
            "required": "This form is missing its submission token; reload the page.",
            "invalid": "This form's submission token was altered; reload the page.",
        },
    )

    # Domain field name → form field name, where they differ.
    field_names = {}

    def __init__(self, *args, **kwargs):
        initial = kwargs.setdefault("initial", {})
        initial.setdefault("token", uuid.uuid4())
        super().__init__(*args, **kwargs)

    def clean_token(self):
        # Checked first, so a double submit is named as one, not as a stale form; `submit`
        # checks again under a lock for two submissions that arrive together.
        token = self.cleaned_data["token"]
        if already_submitted(token):
            raise forms.ValidationError(str(DuplicateSubmission()), code="duplicate")
        return token

    def command(self):
        """The command that this valid form asks for."""
        raise NotImplementedError

    def add_domain_error(self, exc):
        """Show a refused command's errors next to the fields they are about."""
        if not isinstance(exc, ValidationError):
            self.add_error(None, forms.ValidationError(str(exc), code=error_code(exc)))
            return
        for key, messages in exc.errors.items():
            self.place_error(key, messages)

    def place_error(self, key, messages):
        name = self.field_names.get(key, key)
        errors = [forms.ValidationError(message, code="invalid") for message in messages]
        if name in self.fields and name != "token":
            self.add_error(name, errors)
        else:
            label = "" if key == "__all__" else f"{key}: "
            self.add_error(
                None, [forms.ValidationError(f"{label}{m}", code="invalid") for m in messages]
            )


class AddBookForm(SubmissionForm):
    title = forms.CharField(max_length=200)
    author = forms.CharField(max_length=150)
    isbn = forms.CharField(
        label="ISBN", max_length=13, required=False, help_text="10 or 13 digits, optional."
    )
    price_amount = forms.DecimalField(
        label="Price (USD)",
        max_digits=8,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01"}),
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def command(self):
        data = self.cleaned_data
        return AddBook(
            title=data["title"],
            author=data["author"],
            isbn=data["isbn"] or None,
            price_amount=float(data["price_amount"]),
            description=data["description"] or None,
        )


class OrderLineForm(forms.Form):
    """One line of an order: a book from the catalog and how many copies."""

    book_id = forms.UUIDField(
        label="Book",
        widget=forms.Select,
        error_messages={"invalid": "Choose a book from the catalog."},
    )
    quantity = forms.IntegerField(
        initial=1, widget=forms.NumberInput(attrs={"min": "1", "class": "quantity"})
    )

    def __init__(self, *args, choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        # Existence is the domain's call, so a book removed since the page loaded is reported
        # on its line by PlaceOrder rather than hidden by a choice list.
        self.fields["book_id"].widget.choices = [("", "Choose a book…"), *choices]


class BaseOrderLineFormSet(forms.BaseFormSet):
    def initial_form_count(self):
        # Every line is optional (blank ones are skipped), however many were prefilled.
        return 0

    def clean(self):
        if any(self.errors):
            return
        if not self.filled():
            raise forms.ValidationError("Add at least one book to the order.", code="required")

    def filled(self):
        """The lines the customer filled in, in order: `items[i]` of the command is the i-th."""
        return [form for form in self.forms if form.has_changed()]


OrderLineFormSet = forms.formset_factory(
    OrderLineForm, formset=BaseOrderLineFormSet, extra=3, max_num=20, validate_max=True
)


class PlaceOrderForm(SubmissionForm):
    customer_name = forms.CharField(label="Customer name", max_length=150)
    customer_email = forms.EmailField(label="Customer email", required=False)

    lines_prefix = "lines"

    def __init__(self, data=None, *args, lines=None, **kwargs):
        super().__init__(data, *args, **kwargs)
        choices = book_choices()
        if lines is None:
            lines = OrderLineFormSet(
                data, prefix=self.lines_prefix, form_kwargs={"choices": choices}
            )
        else:
            for form in lines.forms:
                form.fields["book_id"].widget.choices = [("", "Choose a book…"), *choices]
        self.lines = lines

    @classmethod
    def with_another_line(cls, data):
        """An unbound copy of the submitted form with one more blank line ("Add a line")."""
        prefix = cls.lines_prefix
        try:
            count = int(data.get(f"{prefix}-TOTAL_FORMS", 0))
        except ValueError:
            count = 0
        count = max(0, min(count, OrderLineFormSet.max_num - 1))
        lines = [
            {
                "book_id": data.get(f"{prefix}-{i}-book_id", ""),
                "quantity": data.get(f"{prefix}-{i}-quantity", ""),
            }
            for i in range(count)
        ]
        formset = OrderLineFormSet(prefix=prefix, initial=lines, form_kwargs={"choices": ()})
        formset.extra = count + 1
        initial = {name: data.get(name, "") for name in ("customer_name", "customer_email")}
        initial["token"] = data.get("token") or uuid.uuid4()
        return cls(initial=initial, lines=formset)

    def is_valid(self):
        form_valid = super().is_valid()
        lines_valid = self.lines.is_valid()
        return form_valid and lines_valid

    def all_forms(self):
        return [self, *self.lines.forms]

    def status(self):
        status = response_status(*self.all_forms())
        if status == 200 and self.lines.is_bound and self.lines.non_form_errors():
            return 422  # no line at all, or too many
        return status

    def command(self):
        data = self.cleaned_data
        return PlaceOrder(
            customer_name=data["customer_name"],
            customer_email=data["customer_email"] or None,
            items=[
                {
                    "book_id": str(line.cleaned_data["book_id"]),
                    "quantity": line.cleaned_data["quantity"],
                }
                for line in self.lines.filled()
            ],
        )

    def place_error(self, key, messages):
        match = _LIST_ITEM.match(key)
        if match and match["list"] == "items":
            lines = self.lines.filled()
            index = int(match["index"])
            if index < len(lines):
                line, field = lines[index], match["field"]
                if field not in line.fields:  # about the whole line, or a field it does not show
                    messages = [f"{field}: {m}" if field else m for m in messages]
                    field = None
                line.add_error(field, [forms.ValidationError(m, code="invalid") for m in messages])
                return
        super().place_error(key, messages)


class OrderActionForm(SubmissionForm):
    """Confirm or ship one order, as of the version of it that the page showed."""

    version = forms.IntegerField(
        widget=forms.HiddenInput,
        error_messages={
            "required": "This form is missing the order's version; reload the page.",
            "invalid": "This form's order version was altered; reload the page.",
        },
    )
    commands = {"confirm": ConfirmOrder, "ship": ShipOrder}

    def __init__(self, *args, order, action, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("version", order.version)
        super().__init__(*args, **kwargs)
        self.order = order
        self.action = action

    def clean(self):
        cleaned = super().clean()
        version = cleaned.get("version")
        if version is not None and version != self.order.version:
            raise self.stale_error()
        return cleaned

    def stale_error(self):
        return forms.ValidationError(
            "This order changed since you loaded the page: it is now %(status)s. "
            "Nothing was done; look again before you try.",
            code="stale",
            params={"status": self.order.get_status_display().lower()},
        )

    def command(self):
        return self.commands[self.action](order_id=str(self.order.id))

    def add_domain_error(self, exc):
        # Two tabs, one order: whoever lost the race is told that the order moved on.
        self.order.refresh_from_db()
        if isinstance(exc, ConcurrencyError) or (
            not isinstance(exc, ValidationError)
            and self.order.version != self.cleaned_data.get("version")
        ):
            self.add_error(None, self.stale_error())
        else:
            super().add_domain_error(exc)


class AdjustStockForm(SubmissionForm):
    amount = forms.IntegerField(
        label="Copies to add",
        help_text="A negative number removes copies.",
        widget=forms.NumberInput(attrs={"class": "quantity"}),
    )

    def __init__(self, *args, book, **kwargs):
        super().__init__(*args, **kwargs)
        self.book = book

    def command(self):
        return AdjustStock(book_id=str(self.book.id), amount=self.cleaned_data["amount"])
