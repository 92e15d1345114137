"""Finding what a page references: its images, the pages it links to, its style sheets.

Everything here is a pure function of the text it is given (an HTML document, a
style sheet, a sitemap) and the URL it came from: no network, no Scrapy engine,
settings or stats. The spider and the renderer call them and act on the results.

- :mod:`~imgscraper.discovery.html`: ``find_images``, ``find_page_links``,
  ``find_frames``, ``find_stylesheets``, ``find_page_title``;
- :mod:`~imgscraper.discovery.references`: ``ImageRef``, what an image reference is;
- :mod:`~imgscraper.discovery.srcset`: ``parse_srcset`` (the WHATWG algorithm), ``pick_srcset``;
- :mod:`~imgscraper.discovery.css`: ``css_image_urls``, ``find_css_images``, ``css_import_urls``;
- :mod:`~imgscraper.discovery.scripts`: JSON-LD and the image URLs inline scripts quote;
- :mod:`~imgscraper.discovery.lazy`: the ``data-*`` attributes of lazy-loading scripts;
- :mod:`~imgscraper.discovery.urls`: cleaning and resolving URLs as browsers do,
  ``is_image_url``, ``image_url_key``, ``image_url_digest``;
- :mod:`~imgscraper.discovery.sitemaps`: the pages and images a sitemap lists.
- :mod:`~imgscraper.discovery.originals`: the rules that rewrite a thumbnail's URL to its original's.

Import each name from the module that defines it.
"""
