//! A browser for sign-in tests over HTTP: cookies kept in a jar, redirects followed by hand, the
//! identity provider's login form filled in and posted, as a browser does it.

use std::collections::BTreeMap;

use demo::idp::DemoIdp;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

/// A browser: cookies by name, requests that ask for HTML and never follow redirects themselves.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: BTreeMap<String, String>,
}

/// One answer, as the browser saw it.
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> String {
        self.headers["location"].to_str().unwrap().to_string()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Default for Browser {
    fn default() -> Browser {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .unwrap(),
            jar: BTreeMap::new(),
        }
    }

    pub fn cookie_header(&self) -> Option<HeaderValue> {
        (!self.jar.is_empty()).then(|| {
            let pairs: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            HeaderValue::from_str(&pairs.join("; ")).unwrap()
        })
    }

    /// Keeps the cookies an answer sets (a `Max-Age=0` or empty one removes the cookie).
    pub fn keep(&mut self, page: &Page) {
        for c in page.set_cookies() {
            let pair = c.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || c.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match self.cookie_header() {
            Some(c) => req.header("cookie", c),
            None => req,
        };
        let r = req.send().await.unwrap();
        let page = Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        };
        self.keep(&page);
        page
    }

    /// A top-level navigation to `url`.
    pub async fn open(&mut self, url: &str) -> Page {
        let req = self
            .http
            .get(url)
            .header("accept", "text/html,application/xhtml+xml")
            .header("sec-fetch-mode", "navigate");
        self.send(req).await
    }

    /// A script's `fetch()` of `url`.
    pub async fn fetch(&mut self, url: &str) -> Page {
        let req = self
            .http
            .get(url)
            .header("accept", "*/*")
            .header("sec-fetch-mode", "cors");
        self.send(req).await
    }

    /// Fills in the login form of `page` (the identity provider's) and posts it to `action`.
    pub async fn sign_in_form(
        &mut self,
        page: &Page,
        action: &str,
        user: &str,
        pass: &str,
    ) -> Page {
        let mut form: Vec<(String, String)> = hidden_fields(&page.body);
        form.push(("username".into(), user.into()));
        form.push(("password".into(), pass.into()));
        let req = self.http.post(action).form(&form);
        self.send(req).await
    }
}

/// The hidden inputs of an HTML form (the login page's, or a form-post answer's).
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split("name=\"").nth(1)?.split('"').next()?;
            let value = rest.split("value=\"").nth(1)?.split('"').next()?;
            let value = value
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            Some((name.to_string(), value))
        })
        .collect()
}

pub fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Follows a sign-in from `url` to the callback's answer: the page the gateway sends after it.
pub async fn sign_in(b: &mut Browser, idp: &DemoIdp, url: &str) -> (Page, String) {
    let start = b.open(url).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let authorize = start.location();
    assert!(
        authorize.starts_with(&format!("{}/authorize?", idp.issuer)),
        "{authorize}"
    );
    let form = b.open(&authorize).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("id=\"sign-in\""), "{}", form.body);
    let answer = b
        .sign_in_form(&form, &format!("{}/authorize", idp.issuer), "alex", "doe")
        .await;
    assert_eq!(
        answer.status, 303,
        "the provider sends the browser back: {}",
        answer.body
    );
    let callback = answer.location();
    (b.open(&callback).await, authorize)
}
