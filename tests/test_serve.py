"""`cg3d serve`: the JSON API through Flask's test client, then the page itself in headless
Chromium, over the real index of tests/helpers/user_shapes.py's files and the model that embedded them."""

from __future__ import annotations

import io

import pytest

import helpers.search_page as search_page
from helpers.user_shapes import BAD, GOOD

QUERY = "a tall round cylinder"


@pytest.fixture(scope="module")
def searcher(shape_index):
    import cg3d
    from cg3d.inference.search import ShapeSearch

    return ShapeSearch(cg3d.load(str(shape_index.checkpoint), device="cpu"), shape_index.index)


@pytest.fixture(scope="module")
def app(searcher):
    from cg3d.serve.app import create_app

    return create_app(searcher)


@pytest.fixture
def client(app):
    return app.test_client()


def row_of(searcher, path) -> int:
    return searcher.table.column("path").to_pylist().index(str(path))


def post_file(client, name: str, data: bytes, **form):
    return client.post("/api/search", data={"file": (io.BytesIO(data), name), **form},
                       content_type="multipart/form-data")


def assert_bad_request(response, *words: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error and "\n" not in error
    for word in words:
        assert word in error, error


def test_the_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'id="query-text"' in page and 'id="query-file"' in page and 'id="preview-canvas"' in page
    assert "http://" not in page and "https://" not in page and "//cdn" not in page


def test_text_search_ranks_as_the_searcher_does(client, searcher):
    response = client.post("/api/search", data={"text": QUERY, "k": "4"})
    assert response.status_code == 200
    answer = response.get_json()
    expected = searcher.search(searcher.embed_text(QUERY), 4)
    assert answer["kind"] == "text"
    assert [hit["row"] for hit in answer["hits"]] == [hit.row for hit in expected]
    assert [hit["score"] for hit in answer["hits"]] == pytest.approx([hit.score for hit in expected], abs=1e-6)
    first = answer["hits"][0]
    assert {**expected[0].as_json(), "score": first["score"]} == {key: first[key] for key in expected[0].as_json()}
    assert first["thumbnail"] == f"/api/thumbnail/{first['row']}"


def test_twelve_hits_by_default_capped_at_the_index_size(client, searcher):
    hits = client.post("/api/search", data={"text": QUERY}).get_json()["hits"]
    assert len(hits) == min(12, searcher.table.num_rows)


@pytest.mark.parametrize("name", [GOOD[0], GOOD[-2]])
def test_an_uploaded_shape_finds_its_own_row_first(client, searcher, shape_index, name):
    path = shape_index.shapes / name
    answer = post_file(client, path.name, path.read_bytes()).get_json()
    assert answer["kind"] == "shape"
    assert answer["hits"][0]["row"] == row_of(searcher, path)
    assert answer["hits"][0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_an_uploaded_image_is_searched_by_the_image_tower(client, searcher):
    png = searcher.thumbnail(0)
    answer = post_file(client, "thumbnail.png", png, k="3").get_json()
    assert answer["kind"] == "image"
    assert [hit["row"] for hit in answer["hits"]] == [hit.row for hit in searcher.search(searcher.embed_image(png), 3)]


def test_bad_requests_answer_400_with_one_line(client, shape_index):
    assert_bad_request(client.post("/api/search", data={"text": "   "}), "empty")
    assert_bad_request(post_file(client, "notes.docx", b"a chair"), "notes.docx", ".ply", ".png")
    assert_bad_request(post_file(client, "notes.txt", b"a chair"), "notes.txt", "no points")  # .txt: x y z rows
    assert_bad_request(post_file(client, "photo.png", b"not a png"), "photo.png", "not an image")
    assert_bad_request(client.post("/api/search", data={"text": QUERY, "k": "lots"}), "k must be")
    broken = shape_index.shapes / "scans/broken.ply"
    response = post_file(client, broken.name, broken.read_bytes())
    assert_bad_request(response, "broken.ply", BAD["scans/broken.ply"])
    assert "cg3d-serve-" not in response.get_json()["error"]  # names the upload, not the temporary file


def test_an_upload_over_the_limit_answers_413_with_one_line(searcher):
    from cg3d.serve.app import create_app

    app = create_app(searcher)
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = post_file(app.test_client(), "big.npy", bytes(2000))
    assert response.status_code == 413 and "the upload is over" in response.get_json()["error"]


def test_thumbnail_and_preview_routes(client, searcher):
    thumbnail = client.get("/api/thumbnail/0")
    assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/png"
    assert thumbnail.data == searcher.thumbnail(0)
    points = client.get("/api/preview/0").get_json()["points"]
    assert points == pytest.approx(searcher.preview(0)) and len(points) % 3 == 0 and len(points) <= 3 * 512
    rows = searcher.table.num_rows
    assert client.get(f"/api/thumbnail/{rows}").status_code == 404
    assert client.get(f"/api/preview/{rows}").status_code == 404


@pytest.fixture(scope="module")
def browser(app):
    """Headless Chromium on the page, served as ``cg3d serve`` serves it."""
    if search_page.browser_missing():
        pytest.skip(search_page.MISSING_BROWSER)
    with search_page.serving(app) as url, search_page.headless_chromium() as driver:
        driver.get(url)
        yield driver


def test_the_page_shows_the_apis_ranking(browser, client):
    search_page.search_text(browser, QUERY)
    expected = client.post("/api/search", data={"text": QUERY}).get_json()["hits"]
    assert search_page.shown_ids(browser) == [hit["id"] for hit in expected]
    first = search_page.shown_results(browser)[0]
    assert first.get_attribute("data-score") == f"{expected[0]['score']:.3f}"
    assert f"{expected[0]['score']:.3f}" in first.text and "#1" in first.text
    assert browser.execute_script("return document.querySelector('#results img').naturalWidth") > 0


def test_an_uploaded_shape_is_first_on_the_page(browser, searcher, shape_index):
    path = shape_index.shapes / GOOD[1]
    search_page.upload(browser, path)
    assert search_page.shown_ids(browser)[0] == searcher.index.ids[row_of(searcher, path)]
    assert search_page.shown_error(browser) == ""


def test_the_page_shows_the_apis_error(browser, tmp_path):
    notes = tmp_path / "notes.docx"
    notes.write_text("a chair")
    search_page.upload(browser, notes)
    assert "notes.docx: neither an image" in search_page.shown_error(browser)


def test_a_clicked_result_shows_its_points(browser):
    search_page.search_text(browser, QUERY)
    result = search_page.shown_results(browser)[0]
    result.click()
    assert "selected" in result.get_attribute("class")
    assert search_page.wait_for_preview(browser) > 100
    assert search_page.preview_ink(browser) > 500
