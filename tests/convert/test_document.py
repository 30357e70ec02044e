"""Documents: generated PDFs (text, scanned, encrypted, corrupt) and Office files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from morag_fleet.convert.base import ConversionError
from morag_fleet.convert.document import DocumentConverter
from tests.convert.conftest import Progress, job_info_for
from tests.support.media import (
    encrypted_pdf,
    page_sentences,
    sales_docx,
    sales_pptx,
    sales_xlsx,
    scanned_pdf,
    text_pdf,
    wer,
)

PAGE_HEADING = re.compile(r"^## Page (\d+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def converter() -> DocumentConverter:
    return DocumentConverter()


def pages_of(markdown: str) -> dict[int, str]:
    parts = PAGE_HEADING.split(markdown)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def test_fifty_page_pdf(converter: DocumentConverter, tmp_path: Path,
                        progress: Progress) -> None:
    texts = page_sentences(50)
    pdf = text_pdf(tmp_path / "report.pdf", texts, title="Fifty Pages")
    result = converter.convert(pdf, {}, job_info_for(pdf, "document", "application/pdf"),
                               progress)
    pages = pages_of(result.markdown)
    assert sorted(pages) == list(range(1, 51))
    for number, text in enumerate(texts, start=1):
        assert wer(text, pages[number]) < 0.02, f"page {number}"
    assert result.markdown.startswith("# Document: report.pdf\n\n## Document Information\n")
    assert "- **Page Count**: 50" in result.markdown
    meta = result.metadata
    assert meta["page_count"] == 50 and meta["file_extension"] == "pdf"
    assert meta["title"] == "Fifty Pages" and meta["author"] == "Test Author"
    assert meta["content_type"] == "document" and "ocr_pages" not in meta
    assert progress.fractions[:50] == [n / 50 for n in range(1, 51)]


def test_scanned_pdf_is_ocred(converter: DocumentConverter, tmp_path: Path) -> None:
    lines = ["Scanned letter from the garden committee", "Invoice number 48213 is now paid",
             "Please water the tomatoes every morning"]
    pdf = scanned_pdf(tmp_path / "scan.pdf", lines, dpi=200)
    result = converter.convert(pdf, {}, job_info_for(pdf, "document"), lambda f, m: None)
    assert result.metadata["ocr_pages"] == 1 and result.metadata["page_count"] == 1
    assert wer(" ".join(lines), pages_of(result.markdown)[1]) < 0.1
    assert "48213" in result.markdown


def test_ocr_can_be_switched_off(converter: DocumentConverter, tmp_path: Path) -> None:
    pdf = scanned_pdf(tmp_path / "scan.pdf", ["Nothing will be read here"], dpi=150)
    result = converter.convert(pdf, {"ocr": False}, job_info_for(pdf, "document"),
                               lambda f, m: None)
    assert "Nothing" not in result.markdown and "ocr_pages" not in result.metadata


def test_encrypted_pdf_needs_its_password(converter: DocumentConverter, tmp_path: Path) -> None:
    pdf = encrypted_pdf(tmp_path / "locked.pdf", "garden")
    with pytest.raises(ConversionError, match=r"locked.pdf: the PDF is encrypted"):
        converter.convert(pdf, {}, job_info_for(pdf, "document"), lambda f, m: None)
    result = converter.convert(pdf, {"password": "garden"}, job_info_for(pdf, "document"),
                               lambda f, m: None)
    assert "Confidential salary figures" in result.markdown


@pytest.mark.parametrize("content", [b"%PDF-1.7\n1 0 obj garbage\n%%EOF", b"just some words"])
def test_corrupt_pdf_is_a_clear_error(converter: DocumentConverter, tmp_path: Path,
                                      content: bytes) -> None:
    pdf = tmp_path / "broken.pdf"
    pdf.write_bytes(content)
    with pytest.raises(ConversionError, match=r"broken.pdf: the file is not a PDF or is corrupt"):
        converter.convert(pdf, {}, job_info_for(pdf, "document"), lambda f, m: None)


def test_docx_headings_and_table(converter: DocumentConverter, tmp_path: Path) -> None:
    docx = sales_docx(tmp_path / "sales.docx")
    result = converter.convert(docx, {}, job_info_for(docx, "document"), lambda f, m: None)
    md = result.markdown
    assert "# Regional Sales Report" in md and "## Outlook" in md
    assert re.search(r"\|\s*North\s*\|\s*1200\s*\|\s*5%\s*\|", md)
    assert "northern region grew faster" in md
    assert result.metadata["file_extension"] == "docx"


def test_pptx_table_and_speaker_notes(converter: DocumentConverter, tmp_path: Path) -> None:
    pptx = sales_pptx(tmp_path / "deck.pptx")
    result = converter.convert(pptx, {}, job_info_for(pptx, "document"), lambda f, m: None)
    md = result.markdown
    assert "Quarterly Results" in md and "Next Steps" in md
    assert re.search(r"\|\s*South\s*\|\s*900\s*\|\s*2%\s*\|", md)
    assert "Remember to thank the volunteers from the north." in md
    assert result.metadata["page_count"] == 2
    assert "- **Slide Count**: 2" in md


def test_xlsx_sheets_as_tables(converter: DocumentConverter, tmp_path: Path) -> None:
    xlsx = sales_xlsx(tmp_path / "sales.xlsx")
    result = converter.convert(xlsx, {}, job_info_for(xlsx, "document"), lambda f, m: None)
    md = result.markdown
    assert "## Sales" in md and "## Costs" in md
    assert re.search(r"\|\s*North\s*\|\s*1200\s*\|\s*5%\s*\|", md)
    assert re.search(r"\|\s*Seeds\s*\|\s*150\s*\|", md)
    assert result.metadata["page_count"] == 2


def test_office_file_with_wrong_extension_is_sniffed(converter: DocumentConverter,
                                                     tmp_path: Path) -> None:
    docx = sales_docx(tmp_path / "upload.bin")
    result = converter.convert(docx, {}, {"file_name": "upload.bin"}, lambda f, m: None)
    assert "# Regional Sales Report" in result.markdown


def test_damaged_office_file(converter: DocumentConverter, tmp_path: Path) -> None:
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(ConversionError, match=r"broken.docx"):
        converter.convert(broken, {}, job_info_for(broken, "document"), lambda f, m: None)


def test_text_and_markdown_pass_through(converter: DocumentConverter, tmp_path: Path) -> None:
    note = tmp_path / "notes.md"
    note.write_text("# Plan\n\nPlant beans in May.\n", encoding="utf-8")
    result = converter.convert(note, {}, job_info_for(note, "document"), lambda f, m: None)
    assert result.markdown.endswith("# Plan\n\nPlant beans in May.\n")
    assert result.metadata["file_extension"] == "md" and result.metadata["title"] == "notes"


def test_html_document(converter: DocumentConverter, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body><h1>Harvest</h1><p>We picked sixty kilos.</p>"
                    "<table><tr><th>Crop</th><th>Kg</th></tr><tr><td>Beans</td><td>18</td></tr>"
                    "</table></body></html>", encoding="utf-8")
    result = converter.convert(page, {}, job_info_for(page, "document"), lambda f, m: None)
    assert "# Harvest" in result.markdown and "We picked sixty kilos." in result.markdown
    assert re.search(r"\|\s*Beans\s*\|\s*18\s*\|", result.markdown)


def test_unsupported_format(converter: DocumentConverter, tmp_path: Path) -> None:
    odd = tmp_path / "drawing.dwg"
    odd.write_bytes(b"AC1032" + b"\x01\x02" * 50)
    with pytest.raises(ConversionError, match=r"unsupported document format 'dwg'"):
        converter.convert(odd, {}, job_info_for(odd, "document"), lambda f, m: None)
