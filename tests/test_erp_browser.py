"""Finance uploads an ERP export in the browser; a real Celery worker imports it while the page
shows a progress bar; the summary appears and the error report downloads."""

from __future__ import annotations

import pytest

from orders.models import Order
from tests.conftest import log_in, make_product
from tests.erp_fixtures import fast_passwords, line, write_csv  # noqa: F401 (autouse)


@pytest.mark.browser
def test_finance_imports_an_export_and_downloads_the_error_report(
    transactional_db, celery_worker, people, new_page, live_server, tmp_path
):
    make_product(sku="NUK-AFZ-02")
    make_product(sku="GIFT-KSJ-01")
    rows = [line(f"B{n:05d}", "NUK-AFZ-02") for n in range(300)]
    rows += [line("B00001", "GIFT-KSJ-01", price="0", gift="是"), line("1.23E+17", "NUK-AFZ-02"), line("B99999", "NO-SUCH-SKU")]
    path = write_csv(tmp_path / "聚水潭导出.csv", rows, encoding="gb18030", title=True)

    page = new_page()
    log_in(page, live_server, "finance")
    page.click("#nav-erp")
    page.set_input_files("#import-file", str(path))
    page.click("#import-now")

    page.wait_for_selector("#import-bar")  # the progress bar is on the page while the worker runs
    page.wait_for_selector("#import-summary", timeout=30_000)
    assert page.inner_text("#count-created") == "300"
    assert page.inner_text("#count-rejected") == "2"
    assert page.inner_text("#count-unchanged") == "0"
    assert page.get_attribute("#import-bar", "value") == "100"
    assert "1.23E+17" in page.inner_text("#import-errors")
    assert Order.objects.filter(order_number__startswith="B").count() == 300

    with page.expect_download() as download_info:
        page.click("#download-errors")
    report = download_info.value.path().read_bytes().decode("utf-8-sig")
    assert "1.23E+17" in report and "NO-SUCH-SKU" in report
    assert ",商品编码," in report  # row, column, order number and reason per line
