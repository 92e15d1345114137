"""The originals' rewrite rules, on URL shapes as the sites write them: each rule rewrites its
thumbnails to their original, and leaves alone what merely looks like one."""

from __future__ import annotations

import pytest

from imgscraper.discovery.originals import RULES, find_original, parse_rules

#: (rule, a thumbnail URL as a page writes it, its original).
REWRITTEN = [
    ("mediawiki", "https://upload.wikimedia.org/wikipedia/commons/thumb/a/a9/Example.jpg/320px-Example.jpg",
     "https://upload.wikimedia.org/wikipedia/commons/a/a9/Example.jpg"),
    ("mediawiki", "https://upload.wikimedia.org/wikipedia/commons/thumb/b/b4/Flag_of_Japan.svg/120px-Flag_of_Japan.svg.png",
     "https://upload.wikimedia.org/wikipedia/commons/b/b4/Flag_of_Japan.svg"),
    ("mediawiki", "https://upload.wikimedia.org/wikipedia/en/thumb/8/80/Wikipedia-logo-v2.svg/langfr-250px-Wikipedia-logo-v2.svg.png",
     "https://upload.wikimedia.org/wikipedia/en/8/80/Wikipedia-logo-v2.svg"),
    ("mediawiki", "https://upload.wikimedia.org/wikipedia/commons/thumb/e/e0/Caf%C3%A9_de_Flore.jpg/1280px-Caf%C3%A9_de_Flore.jpg",
     "https://upload.wikimedia.org/wikipedia/commons/e/e0/Caf%C3%A9_de_Flore.jpg"),
    ("mediawiki", "https://wiki.archlinux.org/images/thumb/3/3a/Tux.png/150px-Tux.png",
     "https://wiki.archlinux.org/images/3/3a/Tux.png"),
    ("wordpress", "https://example.com/wp-content/uploads/2023/05/harbour-300x200.jpg",
     "https://example.com/wp-content/uploads/2023/05/harbour.jpg"),
    ("wordpress", "https://blog.example.org/wp-content/uploads/2021/11/IMG_2041-1024x683.JPG?v=2",
     "https://blog.example.org/wp-content/uploads/2021/11/IMG_2041.JPG?v=2"),
    ("wordpress", "https://example.com/wp-content/uploads/2024/01/panorama-scaled.jpg",
     "https://example.com/wp-content/uploads/2024/01/panorama.jpg"),
    ("wordpress", "https://example.com/wp-content/uploads/2022/03/logo-150x150@2x.png",
     "https://example.com/wp-content/uploads/2022/03/logo.png"),
    ("photon", "https://i0.wp.com/example.com/wp-content/uploads/2023/05/harbour.jpg?resize=300%2C200&ssl=1",
     "https://example.com/wp-content/uploads/2023/05/harbour.jpg"),
    ("photon", "https://i2.wp.com/www.example.org/photos/dog.png?fit=1200%2C800",
     "http://www.example.org/photos/dog.png"),
    ("photon", "https://i1.wp.com/example.com/wp-content/uploads/2023/05/harbour-768x512.jpg?w=640&ssl=1",
     "https://example.com/wp-content/uploads/2023/05/harbour.jpg"),  # then wordpress's rule
    ("wordpress-com", "https://myblog.files.wordpress.com/2019/03/img_1234.jpg?w=640&h=480",
     "https://myblog.files.wordpress.com/2019/03/img_1234.jpg"),
    ("blogger", "https://blogger.googleusercontent.com/img/b/R29vZ2xl/AVvXsEhQz8S3p1Yk/s640/beach.jpg",
     "https://blogger.googleusercontent.com/img/b/R29vZ2xl/AVvXsEhQz8S3p1Yk/s0/beach.jpg"),
    ("blogger", "https://1.bp.blogspot.com/-xYzAbC12/XkP3dN2VQaI/AAAAAAAAB7c/pQr0sT-uvWx/w400-h300/IMG_0042.jpg",
     "https://1.bp.blogspot.com/-xYzAbC12/XkP3dN2VQaI/AAAAAAAAB7c/pQr0sT-uvWx/s0/IMG_0042.jpg"),
    ("blogger", "https://blogger.googleusercontent.com/img/b/R29vZ2xl/AVvXsEg7/w640-h426-rw/header.png",
     "https://blogger.googleusercontent.com/img/b/R29vZ2xl/AVvXsEg7/s0/header.png"),
    ("googleusercontent", "https://blogger.googleusercontent.com/img/a/AVvXsEiT9fQ2kL=w400-h300",
     "https://blogger.googleusercontent.com/img/a/AVvXsEiT9fQ2kL=s0"),
    ("googleusercontent", "https://lh3.googleusercontent.com/pw/AP1GczNx7Yq=w1200-h630-p-k-no-nu",
     "https://lh3.googleusercontent.com/pw/AP1GczNx7Yq=s0"),
    ("medium", "https://miro.medium.com/max/800/1*AbCdEfGhIjKlMnOpQr.jpeg",
     "https://miro.medium.com/1*AbCdEfGhIjKlMnOpQr.jpeg"),
    ("medium", "https://miro.medium.com/v2/resize:fit:1400/format:webp/1*x4Kd9-Pq_ZtY.png",
     "https://miro.medium.com/v2/1*x4Kd9-Pq_ZtY.png"),
    ("medium", "https://miro.medium.com/v2/resize:fill:88:88/1*dmbNkD5D-u45r44go_cf0g.png",
     "https://miro.medium.com/v2/1*dmbNkD5D-u45r44go_cf0g.png"),
    ("medium", "https://cdn-images-1.medium.com/max/1600/0*Yh3mQ.jpg?q=20",
     "https://cdn-images-1.medium.com/0*Yh3mQ.jpg"),
    ("guardian", "https://i.guim.co.uk/img/media/4a5b6c7d8e9f0a1b2c3d/0_0_3000_2000/master/3000.jpg"
                 "?width=620&dpr=2&s=none&crop=none",
     "https://media.guim.co.uk/4a5b6c7d8e9f0a1b2c3d/0_0_3000_2000/master/3000.jpg"),
    ("guardian", "https://i.guim.co.uk/img/static/sys-images/Guardian/Pix/pictures/2014/4/11/photo.jpg?width=300&s=ab12",
     "https://static.guim.co.uk/sys-images/Guardian/Pix/pictures/2014/4/11/photo.jpg"),
    ("nyt", "https://static01.nyt.com/images/2023/05/14/multimedia/14xp-cats-01-gkpt/14xp-cats-01-gkpt-articleLarge.jpg"
            "?quality=75&auto=webp&disable=upscale",
     "https://static01.nyt.com/images/2023/05/14/multimedia/14xp-cats-01-gkpt/14xp-cats-01-gkpt-superJumbo.jpg"),
    ("nyt", "https://static01.nyt.com/images/2022/09/01/arts/01museum/01museum-mediumThreeByTwo440.jpg",
     "https://static01.nyt.com/images/2022/09/01/arts/01museum/01museum-superJumbo.jpg"),
    ("shopify", "https://cdn.shopify.com/s/files/1/0123/4567/products/linen-shirt_300x300.jpg?v=1612345678",
     "https://cdn.shopify.com/s/files/1/0123/4567/products/linen-shirt.jpg?v=1612345678"),
    ("shopify", "https://cdn.shopify.com/s/files/1/0123/4567/products/mug_1024x1024@2x.png?v=1",
     "https://cdn.shopify.com/s/files/1/0123/4567/products/mug.png?v=1"),
    ("shopify", "https://shop.example.com/cdn/shop/products/linen-shirt_grande.jpg?v=1612345678",
     "https://shop.example.com/cdn/shop/products/linen-shirt.jpg?v=1612345678"),
    ("shopify-parameters", "https://shop.example.com/cdn/shop/files/banner.jpg?v=1700000000&width=750",
     "https://shop.example.com/cdn/shop/files/banner.jpg?v=1700000000"),
    ("cloudinary", "https://res.cloudinary.com/demo/image/upload/c_fill,w_300,h_200/q_auto,f_auto/v1612345678/samples/dog.jpg",
     "https://res.cloudinary.com/demo/image/upload/v1612345678/samples/dog.jpg"),
    ("cloudinary", "https://res.cloudinary.com/acme/image/upload/t_thumbnail/products/chair.png",
     "https://res.cloudinary.com/acme/image/upload/products/chair.png"),
    ("imgix", "https://assets.example.imgix.net/photos/beach.jpg?w=400&h=300&fit=crop&auto=format,compress",
     "https://assets.example.imgix.net/photos/beach.jpg"),
    ("imgix", "https://images.unsplash.com/photo-1501785888041-af3ef285b470?ixlib=rb-4.0.3&auto=format&fit=crop&w=400&q=80",
     "https://images.unsplash.com/photo-1501785888041-af3ef285b470"),
    ("squarespace", "https://images.squarespace-cdn.com/content/v1/5a1b2c3d4e5f/1512345678901-ABCDEF/photo.jpg?format=500w",
     "https://images.squarespace-cdn.com/content/v1/5a1b2c3d4e5f/1512345678901-ABCDEF/photo.jpg"),
    ("squarespace", "https://static1.squarespace.com/static/5a1b2c/t/5b6c7d/1533000000000/hero.png?format=1500w&v=2",
     "https://static1.squarespace.com/static/5a1b2c/t/5b6c7d/1533000000000/hero.png?v=2"),
]

#: (the rule it nearly matches, a URL that merely looks like its thumbnails): left alone by every rule.
LEFT_ALONE = [
    ("mediawiki", "https://upload.wikimedia.org/wikipedia/commons/a/a9/Example.jpg"),  # the original already
    ("mediawiki", "https://example.com/thumb/photos/beach.jpg/320px-beach.jpg"),  # no hashed folders
    ("mediawiki", "https://upload.wikimedia.org/wikipedia/commons/thumb/1/1a/Report.pdf/page1-220px-Report.pdf.jpg"),
    ("wordpress", "https://example.com/img/banner-300x200.jpg"),  # not WordPress's uploads
    ("wordpress", "https://example.com/wp-content/themes/twentyone/img/bg-1920x1080.jpg"),  # a theme's file
    ("wordpress", "https://example.com/wp-content/uploads/2023/05/harbour.jpg"),
    ("photon", "https://i0.wp.com/example.com/wp-content/uploads/2023/05/harbour.jpg?ssl=1"),  # full size already
    ("photon", "https://i7.wp.com/example.com/photo.jpg?resize=300%2C200"),  # not one of Photon's hosts
    ("photon", "https://cdn.example.com/photo.jpg?w=300&h=200"),
    ("wordpress-com", "https://myblog.files.wordpress.com/2019/03/img_1234.jpg?v=3"),  # no size parameter
    ("wordpress-com", "https://files.example.com/2019/03/img_1234.jpg?w=640"),
    ("blogger", "https://blogger.googleusercontent.com/img/b/R29vZ2xl/AVvXsEhQz8S3p1Yk/s0/beach.jpg"),
    ("blogger", "https://example.com/gallery/s640/beach.jpg"),
    ("googleusercontent", "https://lh3.googleusercontent.com/a/ACg8ocKxYz"),
    ("medium", "https://miro.medium.com/v2/1*x4Kd9-Pq_ZtY.png"),
    ("medium", "https://medium.com/max/800/1*AbCdEfGhIjKlMnOpQr.jpeg"),  # the site, not its image server
    ("medium", "https://example.com/max/800/1*AbCd.jpeg"),
    ("guardian", "https://media.guim.co.uk/4a5b6c7d8e9f0a1b2c3d/0_0_3000_2000/master/3000.jpg"),
    ("guardian", "https://i.guim.co.uk.example.net/img/media/4a5b/0_0_3000_2000/master/3000.jpg?width=620"),
    ("nyt", "https://static01.nyt.com/images/2023/05/14/multimedia/14xp-cats-01-gkpt/14xp-cats-01-gkpt-superJumbo.jpg"),
    ("nyt", "https://static01.nyt.com/images/2023/05/14/multimedia/14xp-cats-01-gkpt/14xp-cats-01-gkpt.jpg"),
    ("nyt", "https://example.com/images/photo-articleLarge.jpg"),
    ("shopify", "https://cdn.shopify.com/s/files/1/0123/4567/files/logo.png?v=1"),
    ("shopify", "https://example.com/images/banner_300x300.jpg"),  # not Shopify's
    ("shopify-parameters", "https://example.com/images/banner.jpg?width=750"),
    ("cloudinary", "https://res.cloudinary.com/demo/image/upload/v1612345678/samples/dog.jpg"),
    ("cloudinary", "https://res.cloudinary.com/demo/image/upload/my_photos/beach.jpg"),  # a folder, not a transformation
    ("cloudinary", "https://res.cloudinary.com/demo/image/upload/s--Ab1Cd2Ef--/w_300/sample.jpg"),  # signed
    ("cloudinary", "https://example.com/image/upload/w_300/dog.jpg"),
    ("imgix", "https://assets.example.imgix.net/photos/beach.jpg?w=400&s=1a2b3c4d5e6f"),  # signed
    ("imgix", "https://example.com/beach.jpg?w=400&fit=crop"),
    ("squarespace", "https://images.squarespace-cdn.com/content/v1/5a1b/1512345678901-ABCDEF/photo.jpg?format=original"),
    ("squarespace", "https://example.com/photo.jpg?format=500w"),
    ("any", "data:image/png;base64,iVBORw0KGgo-300x200.png"),
]


@pytest.mark.parametrize(("rule", "thumbnail", "original"), REWRITTEN, ids=lambda v: v if "://" not in v else "")
def test_a_thumbnail_is_rewritten_to_its_original(rule, thumbnail, original):
    url, applied = find_original(thumbnail, RULES)
    assert url == original
    assert rule in applied


@pytest.mark.parametrize(("rule", "url"), LEFT_ALONE, ids=lambda v: v if "://" not in v else "")
def test_a_url_that_merely_looks_like_a_thumbnail_is_left_alone(rule, url):
    assert find_original(url, RULES) == (url, ())


def test_every_rule_has_a_rewritten_and_a_left_alone_case_and_says_what_it_covers():
    names = {rule.name for rule in RULES}
    assert {rule for rule, _, _ in REWRITTEN} == names
    assert {rule for rule, _ in LEFT_ALONE} - {"any"} == names
    assert all(rule.covers for rule in RULES)


def test_an_original_is_its_own_original():
    for _, _, original in REWRITTEN:
        assert find_original(original, RULES)[0] == original


def test_user_rules_come_first_and_the_built_in_ones_still_apply():
    rules = parse_rules('{"^(https://cdn\\\\.example\\\\.com)/thumbs/": "\\\\1/wp-content/uploads/"}')
    url, applied = find_original("https://cdn.example.com/thumbs/2023/05/a-300x200.jpg", (*rules, *RULES))
    assert url == "https://cdn.example.com/wp-content/uploads/2023/05/a.jpg"
    assert applied == ("rule-1", "wordpress")


def test_user_rules_from_a_dict_keep_their_order():
    rules = parse_rules({r"-small\.": ".", r"/small/": "/large/"})
    assert [rule.pattern.pattern for rule in rules] == [r"-small\.", "/small/"]
    assert find_original("https://x.example/small/a-small.png", rules)[0] == "https://x.example/large/a.png"
    assert parse_rules("") == parse_rules(None) == parse_rules({}) == ()


@pytest.mark.parametrize(("value", "problem"), [
    ("[1, 2]", "is not a JSON object"),
    ("not json", "is not a JSON object"),
    ('{"(unclosed": "x"}', "has a bad rule '(unclosed'"),
    ('{"a(b)": "\\\\2"}', "invalid group reference 2"),
    ('{"a": 1}', "has a replacement that is not text"),
])
def test_a_bad_user_rule_says_what_is_wrong(value, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        parse_rules(value)
