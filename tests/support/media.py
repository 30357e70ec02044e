"""Test inputs with known content that need test-only libraries (reportlab, python-docx,
python-pptx, openpyxl), plus the word-error-rate measure the converter tests assert with.

Speech, video and text images come from `morag_fleet.samples.generate`, which the demo uses too.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path

import jiwer

VOCABULARY = (
    "garden", "river", "mountain", "window", "letter", "market", "station", "village",
    "harbour", "meadow", "lantern", "orchard", "bridge", "candle", "forest", "island",
    "kettle", "ladder", "mirror", "needle", "pepper", "pocket", "rabbit", "saddle", "tunnel",
    "valley", "wagon", "yellow", "basket", "bottle", "button", "castle", "copper", "dragon",
    "engine", "feather", "hammer", "jacket", "kitchen", "marble", "napkin", "pillow", "rocket",
    "silver", "ticket", "violin", "whistle",
)


def normalise(text: str) -> str:
    """Lower case, punctuation and markdown removed, whitespace collapsed."""
    text = re.sub(r"\[\d{2}:\d{2}(?::\d{2})?\]", " ", text)
    text = re.sub(r"[^\w\s']", " ", text.lower())
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


def page_sentences(pages: int, words_per_page: int = 40, seed: int = 7) -> list[str]:
    """Deterministic, distinct text for each page, from plain dictionary words."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCABULARY) for _ in range(words_per_page)) for _ in range(pages)]


def text_pdf(dest: Path, pages: Sequence[str], title: str = "Generated Report") -> Path:
    """One page per text, wrapped over lines of Helvetica 12 pt."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(dest), pagesize=A4)
    pdf.setTitle(title)
    pdf.setAuthor("Test Author")
    for text in pages:
        text_object = pdf.beginText(72, 760)
        text_object.setFont("Helvetica", 12)
        words = text.split()
        for start in range(0, len(words), 10):
            text_object.textLine(" ".join(words[start:start + 10]))
        pdf.drawText(text_object)
        pdf.showPage()
    pdf.save()
    return dest


def encrypted_pdf(dest: Path, password: str) -> Path:
    from reportlab.lib.pdfencrypt import StandardEncryption
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(dest), encrypt=StandardEncryption(password, ownerPassword="owner"))
    pdf.drawString(72, 720, "Confidential salary figures for the garden project.")
    pdf.showPage()
    pdf.save()
    return dest


def scanned_pdf(dest: Path, lines: Sequence[str], dpi: int = 200) -> Path:
    """An image-only PDF: the text exists only as pixels, like a scanner's output."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = int(8.27 * dpi), int(11.69 * dpi)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=int(dpi / 6))
    for index, line in enumerate(lines):
        draw.text((dpi, dpi + index * int(dpi / 3)), line, font=font, fill=0)
    page.save(dest, resolution=dpi)
    return dest


def sales_docx(dest: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Regional Sales Report", level=1)
    document.add_paragraph("The northern region grew faster than any other this year.")
    table = document.add_table(rows=3, cols=3)
    for row, values in enumerate([("Region", "Revenue", "Growth"), ("North", "1200", "5%"),
                                  ("South", "900", "2%")]):
        for col, value in enumerate(values):
            table.rows[row].cells[col].text = value
    document.add_heading("Outlook", level=2)
    document.add_paragraph("Next year we expect steady demand for garden tools.")
    document.save(str(dest))
    return dest


def sales_pptx(dest: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Quarterly Results"
    rows = [("Region", "Revenue", "Growth"), ("North", "1200", "5%"), ("South", "900", "2%")]
    table = slide.shapes.add_table(3, 3, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            table.cell(r, c).text = value
    slide.notes_slide.notes_text_frame.text = "Remember to thank the volunteers from the north."
    second = deck.slides.add_slide(deck.slide_layouts[1])
    second.shapes.title.text = "Next Steps"
    second.placeholders[1].text = "Plant a herb spiral near the shed"
    deck.save(str(dest))
    return dest


def sales_xlsx(dest: Path) -> Path:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Sales"
    for row in [("Region", "Revenue", "Growth"), ("North", 1200, "5%"), ("South", 900, "2%")]:
        sheet.append(row)
    costs = workbook.create_sheet("Costs")
    costs.append(("Item", "Amount"))
    costs.append(("Seeds", 150))
    workbook.save(str(dest))
    return dest
