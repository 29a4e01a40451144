"""Load the demo catalog and orders; with --traffic, keep orders flowing until stopped."""

import random
import signal
import threading
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from bookshelf.commands import AddBook, AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder
from bookshelf.models import Book, Inventory, Order, OrderStatus
from bookshelf.selectors import LOW_STOCK
from bookshelf.submissions import submit
from inspector.exceptions import DomainError

BOOKS = [
    ("The Great Gatsby", "F. Scott Fitzgerald", "9780743273565", 12.99,
     "Jay Gatsby's lavish parties and his longing for Daisy Buchanan, on Long Island in 1922."),
    ("To Kill a Mockingbird", "Harper Lee", "9780061120084", 14.99,
     "A lawyer in 1930s Alabama defends a Black man, seen through his daughter Scout's eyes."),
    ("Nineteen Eighty-Four", "George Orwell", "9780451524935", 9.99,
     "Winston Smith and the Party that watches everything, even what he thinks."),
    ("Pride and Prejudice", "Jane Austen", "9780141439518", 8.99,
     "Elizabeth Bennet, Mr Darcy, and first impressions that turn out to be wrong."),
    ("The Catcher in the Rye", "J. D. Salinger", "9780316769488", 10.99,
     "Holden Caulfield's three days in New York after being expelled from school."),
    ("Moby-Dick", "Herman Melville", "9780142437247", 13.50,
     "Captain Ahab's hunt for the white whale that took his leg."),
    ("Brave New World", "Aldous Huxley", "9780060850524", 11.99,
     "A World State kept content by engineering, conditioning and soma."),
    ("The Hobbit", "J. R. R. Tolkien", "9780547928227", 14.00,
     "Bilbo Baggins is swept into a quest to reclaim a dragon's treasure."),
    ("Fahrenheit 451", "Ray Bradbury", "9781451673319", 9.50,
     "A fireman whose job is to burn books starts to read them."),
    ("Jane Eyre", "Charlotte Brontë", "9780141441146", 9.99,
     "An orphaned governess and the secrets of Thornfield Hall."),
    ("Beloved", "Toni Morrison", "9781400033416", 15.00,
     "Sethe, formerly enslaved, is haunted by the past in post-war Ohio."),
    ("One Hundred Years of Solitude", "Gabriel García Márquez", "9780060883287", 16.99,
     "Seven generations of the Buendía family in the town of Macondo."),
    ("Dune", "Frank Herbert", "9780441172719", 10.99,
     "Paul Atreides on the desert planet Arrakis, source of the spice."),
    ("The Left Hand of Darkness", "Ursula K. Le Guin", "9780441478125", 9.99,
     "An envoy on the icy world of Gethen, whose people have no fixed sex."),
    ("Crime and Punishment", "Fyodor Dostoevsky", "9780143107637", 14.50,
     "Raskolnikov commits a murder and cannot escape what follows."),
    ("The Road", "Cormac McCarthy", "9780307387899", 13.00,
     "A father and son walk south through a burned America."),
    ("Things Fall Apart", "Chinua Achebe", "9780385474542", 11.00,
     "Okonkwo's life in an Igbo village as colonial rule arrives."),
    ("Middlemarch", "George Eliot", "9780141439549", 12.00,
     "Lives, marriages and reform in a provincial English town."),
    ("The Remains of the Day", "Kazuo Ishiguro", "9780679731726", 12.50,
     "An English butler looks back on decades of service."),
    ("Frankenstein", "Mary Shelley", "9780141439471", 7.99,
     "Victor Frankenstein and the creature he made and abandoned."),
    ("Wuthering Heights", "Emily Brontë", "9780141439556", 8.50,
     "Heathcliff and Catherine on the Yorkshire moors."),
]  # fmt: skip

CUSTOMERS = [
    ("Alice Johnson", "alice@example.com"),
    ("Bob Smith", "bob@example.com"),
    ("Carol Díaz", "carol@example.com"),
    ("Dan Okafor", "dan@example.com"),
    ("Erin Novak", "erin@example.com"),
    ("Farah Haddad", "farah@example.com"),
]
DEMO_DOMAIN = "@example.com"
# Orders loaded once: two left pending, two confirmed, two shipped.
DEMO_ORDERS = [
    (0, [(0, 1), (2, 1)], OrderStatus.PENDING),
    (1, [(12, 2)], OrderStatus.PENDING),
    (2, [(7, 1), (3, 1)], OrderStatus.CONFIRMED),
    (3, [(5, 1)], OrderStatus.CONFIRMED),
    (4, [(13, 1), (18, 2)], OrderStatus.SHIPPED),
    (5, [(8, 1)], OrderStatus.SHIPPED),
]


class Command(BaseCommand):
    help = (
        "Load about 20 books and a few orders in each state (safe to run again). With "
        "--traffic, keep placing, confirming and shipping orders at --rate until stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--traffic", action="store_true", help="Keep sending orders until stopped."
        )
        parser.add_argument(
            "--rate", type=float, default=2.0, help="Commands per second (default 2)."
        )
        parser.add_argument(
            "--iterations", type=int, default=None, help="Stop after this many commands."
        )
        parser.add_argument(
            "--oversell",
            type=float,
            default=0.1,
            help="Share of new orders that ask for more copies than are in stock (default 0.1).",
        )
        parser.add_argument("--seed", type=int, default=None, help="Seed for repeatable runs.")

    def handle(self, *args, **options):
        if options["rate"] <= 0:
            raise CommandError("--rate must be positive")
        if not 0 <= options["oversell"] <= 1:
            raise CommandError("--oversell must be between 0 and 1")
        self.load_catalog()
        self.load_orders()
        if options["traffic"]:
            traffic = Traffic(
                rng=random.Random(options["seed"]),
                oversell=options["oversell"],
                write=self.stdout.write,
            )
            traffic.run(rate=options["rate"], iterations=options["iterations"])

    def load_catalog(self):
        known = set(Book.objects.values_list("isbn", flat=True))
        added = 0
        for title, author, isbn, price, description in BOOKS:
            if isbn in known:
                continue
            _process(
                AddBook(
                    title=title,
                    author=author,
                    isbn=isbn,
                    price_amount=price,
                    description=description,
                )
            )
            added += 1
        self.stdout.write(f"Catalog: {Book.objects.count()} books ({added} added)")

    def load_orders(self):
        if Order.objects.filter(customer_email__endswith=DEMO_DOMAIN).exists():
            self.stdout.write("Orders: the demo orders are already there")
            return
        books = {book.isbn: book for book in Book.objects.filter(isbn__in=[b[2] for b in BOOKS])}
        placed = 0
        for customer, lines, status in DEMO_ORDERS:
            name, email = CUSTOMERS[customer]
            items = [
                {"book_id": str(books[BOOKS[index][2]].id), "quantity": quantity}
                for index, quantity in lines
                if BOOKS[index][2] in books
            ]
            order_id = _process(PlaceOrder(customer_name=name, customer_email=email, items=items))
            if status in (OrderStatus.CONFIRMED, OrderStatus.SHIPPED):
                _process(ConfirmOrder(order_id=str(order_id)))
            if status == OrderStatus.SHIPPED:
                _process(ShipOrder(order_id=str(order_id)))
            placed += 1
        self.stdout.write(f"Orders: {placed} placed (2 pending, 2 confirmed, 2 shipped)")


def _process(command):
    """Run a command under its own correlation id; return what its handler returned."""
    return submit(command, token=uuid.uuid4()).result


class Traffic:
    """A stream of shop actions: place (sometimes more than the stock), confirm, ship, restock."""

    def __init__(self, *, rng, oversell, write):
        self.rng = rng
        self.oversell = oversell
        self.write = write
        self.stopping = threading.Event()
        self.counts = {"sent": 0, "refused": 0, "failed runs": 0}

    def run(self, *, rate, iterations=None):
        self._install_signal_handlers()
        self.write(f"Sending traffic at {rate:g} commands/s; stop with Ctrl-C")
        while not self.stopping.is_set():
            if iterations is not None and self.counts["sent"] >= iterations:
                break
            close_old_connections()
            self.step()
            self.stopping.wait(1 / rate)
        close_old_connections()
        self.write(
            "Traffic stopped: {sent} commands, {refused} refused, {failed runs} failed handler "
            "runs".format(**self.counts)
        )

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stopping.set())

    def step(self):
        command = self.next_command()
        self.counts["sent"] += 1
        try:
            receipt = submit(command, token=uuid.uuid4())
        except DomainError as exc:
            self.counts["refused"] += 1
            self.write(f"{type(command).__name__} refused: {exc}")
            return
        self.counts["failed runs"] += receipt.failed
        raised = ", ".join(
            f"{event.name} → {event.runs} run{'' if event.runs == 1 else 's'}"
            + (f" ({event.failed} failed)" if event.failed else "")
            for event in receipt.raised
        )
        self.write(f"{receipt.command_name}: {raised}")

    def next_command(self):
        roll = self.rng.random()
        if roll < 0.05:
            low = Inventory.objects.filter(quantity__lte=LOW_STOCK).order_by("quantity").first()
            if low is not None:
                return AdjustStock(book_id=str(low.book_id), amount=10)
        if roll < 0.45:
            return self.new_order()
        status = OrderStatus.PENDING if roll < 0.75 else OrderStatus.CONFIRMED
        order = Order.objects.filter(status=status).order_by("placed_at").first()
        if order is None:
            return self.new_order()
        if status == OrderStatus.PENDING:
            return ConfirmOrder(order_id=str(order.id))
        return ShipOrder(order_id=str(order.id))

    def new_order(self):
        stock = list(Inventory.objects.values_list("book_id", "quantity"))
        if not stock:
            raise CommandError("The catalog is empty")
        name, email = self.rng.choice(CUSTOMERS)
        picked = self.rng.sample(stock, k=min(len(stock), self.rng.randint(1, 3)))
        items = [
            {"book_id": str(book_id), "quantity": self.rng.randint(1, 2)} for book_id, _ in picked
        ]
        if self.rng.random() < self.oversell:
            book_id, quantity = picked[0]
            items[0]["quantity"] = quantity + self.rng.randint(1, 3)
        return PlaceOrder(customer_name=name, customer_email=email, items=items)
