import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import {
  DEVICE_TYPES,
  type DeviceInfo,
  isBotUserAgent,
  makeUserAgentCache,
  parseDevice,
  parseDeviceUncached
} from "../src/domain/Device.ts"
import { ClientDevice } from "../src/domain/Envelope.ts"

// ---------------------------------------------------------------------------------------------
// Real-world User-Agents
// ---------------------------------------------------------------------------------------------
const UA = {
  chromeWin10: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  edgeWin10:
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
  firefoxWin10: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
  firefoxWin7: "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0",
  chromeWin81: "Mozilla/5.0 (Windows NT 6.3; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
  chromeWin8: "Mozilla/5.0 (Windows NT 6.2; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/49.0.2623.112 Safari/537.36",
  chromeVista: "Mozilla/5.0 (Windows NT 6.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/49.0.2623.112 Safari/537.36",
  firefoxXp: "Mozilla/5.0 (Windows NT 5.1; rv:52.0) Gecko/20100101 Firefox/52.0",
  ie11: "Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko",
  operaPresto: "Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18",
  safariMac:
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
  safariMacSonoma:
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2.1 Safari/605.1.15",
  firefoxMac: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
  chromeMac:
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  edgeMac:
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
  firefoxLinux: "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
  safariIphone:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
  safariIphoneMajorOnly:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17 Mobile/15E148 Safari/604.1",
  safariIpad:
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
  chromeIpad:
    "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
  chromeIphone:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
  firefoxIphone:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15",
  ipodTouch:
    "Mozilla/5.0 (iPod touch; CPU iPhone OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1",
  chromePixel:
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
  chromeAndroidReduced:
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
  chromeAndroidTabletNoModel:
    "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  chromeGalaxyTab:
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  chromeGalaxyTabS7:
    "Mozilla/5.0 (Linux; Android 12; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  samsungInternet:
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
  samsungInternetTablet:
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Safari/537.36",
  firefoxAndroid: "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0",
  androidStock:
    "Mozilla/5.0 (Linux; U; Android 4.4.2; en-us; SM-V700 Build/KOT49H) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Mobile Safari/537.36",
  galaxyWatch:
    "Mozilla/5.0 (Linux; Android 11; SM-R875F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
  cubotPhone:
    "Mozilla/5.0 (Linux; Android 10; CUBOT NOTE 20) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
  facebookIos:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21B101 [FBAN/FBIOS;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.1.2;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
  facebookAndroid:
    "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/442.0.0.30.112;]",
  instagramIos:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 309.0.2.18.117 (iPhone14,5; iOS 17_1; en_US; en; scale=3.00; 1170x2532; 537288532)",
  instagramAndroid:
    "Mozilla/5.0 (Linux; Android 14; SM-S911B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36 Instagram 312.1.0.34.111 Android (34/14; 480dpi; 1080x2340; samsung; SM-S911B; dm1q; qcom; en_US; 541635890)",
  pinterestIos:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [Pinterest/iOS]",
  linkedinAppIos:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 LinkedInApp/9.29.8962",
  snapchatIos:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/12.60.0.45 (like Safari/8617.1.17.10.9, panda)",
  twitterIos:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Twitter for iPhone/10.18",
  windowsPhone:
    "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.15063",
  samsungTv:
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
  // bots
  googlebot: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  googlebotSmartphone:
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.129 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  googlebotDesktopChrome:
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/120.0.6099.129 Safari/537.36",
  bingbot: "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
  yandexbot: "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
  duckduckbot: "Mozilla/5.0 (compatible; DuckDuckBot-Https/1.1; https://duckduckgo.com/bot)",
  ahrefs: "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
  gptbot: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.0; +https://openai.com/gptbot",
  applebot:
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
  genericCrawler: "AcmeCrawler/1.0 (+https://acme.example/crawler)",
  genericSpider: "Mozilla/5.0 (compatible; MySpider/2.0)",
  curl: "curl/8.4.0",
  pythonRequests: "python-requests/2.31.0",
  // social fetchers
  facebookExternalHit: "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
  twitterbot: "Twitterbot/1.0",
  linkedinbot: "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
  slackbot: "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
  discordbot: "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
  telegrambot: "TelegramBot (like TwitterBot)",
  whatsapp: "WhatsApp/2.23.20.0",
  pinterestbot: "Pinterest/0.2 (+http://www.pinterest.com/bot.html)",
  // headless / automation
  headlessChrome:
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36",
  puppeteer:
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Puppeteer",
  playwright:
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Playwright/1.40",
  selenium:
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Selenium",
  phantomjs:
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1"
} as const

type Expected = Partial<Pick<
  DeviceInfo,
  "deviceType" | "isBot" | "browser" | "browserVersion" | "browserMajor" | "os" | "osVersion" | "deviceVendor" | "deviceModel"
>>

interface Case {
  readonly name: string
  readonly ua: string | undefined
  readonly expected: Expected
}

const human = { isBot: false } as const
const bot = { isBot: true, deviceType: "bot" } as const

/** Expected values from the device and bot rules (docs/architecture.md, "Enrichment") applied to what each UA says. */
const cases: ReadonlyArray<Case> = [
  // desktop browsers
  {
    name: "Chrome 120 on Windows 10",
    ua: UA.chromeWin10,
    expected: {
      ...human,
      deviceType: "desktop",
      browser: "Chrome",
      browserVersion: "120.0",
      browserMajor: 120,
      os: "Windows",
      osVersion: "10/11",
      deviceVendor: null,
      deviceModel: null
    }
  },
  {
    name: "Edge 120 on Windows 10",
    ua: UA.edgeWin10,
    expected: { ...human, deviceType: "desktop", browser: "Edge", browserVersion: "120.0", browserMajor: 120, os: "Windows", osVersion: "10/11" }
  },
  {
    name: "Firefox 121 on Windows 10",
    ua: UA.firefoxWin10,
    expected: { ...human, deviceType: "desktop", browser: "Firefox", browserVersion: "121.0", browserMajor: 121, osVersion: "10/11" }
  },
  {
    name: "Firefox 115 on Windows 7",
    ua: UA.firefoxWin7,
    expected: { ...human, deviceType: "desktop", browser: "Firefox", browserVersion: "115.0", os: "Windows", osVersion: "7" }
  },
  { name: "IE 11 on Windows 10", ua: UA.ie11, expected: { ...human, deviceType: "desktop", browser: "IE", browserVersion: "11.0", browserMajor: 11, osVersion: "10/11" } },
  {
    name: "Opera Presto 12.18 on Windows 7",
    ua: UA.operaPresto,
    expected: { ...human, deviceType: "desktop", browser: "Opera", browserVersion: "12.18", browserMajor: 12, osVersion: "7" }
  },
  {
    name: "Safari 17.2 on macOS 10.15.7",
    ua: UA.safariMac,
    expected: {
      ...human,
      deviceType: "desktop",
      browser: "Safari",
      browserVersion: "17.2",
      browserMajor: 17,
      os: "macOS",
      osVersion: "10.15.7",
      deviceVendor: "Apple",
      deviceModel: "Macintosh"
    }
  },
  {
    name: "Safari 17.2.1 on macOS 14.2.1",
    ua: UA.safariMacSonoma,
    expected: { ...human, deviceType: "desktop", browser: "Safari", browserVersion: "17.2", os: "macOS", osVersion: "14.2.1" }
  },
  {
    name: "Firefox on macOS (dotted version)",
    ua: UA.firefoxMac,
    expected: { ...human, deviceType: "desktop", browser: "Firefox", browserVersion: "121.0", os: "macOS", osVersion: "10.15" }
  },
  { name: "Chrome on macOS", ua: UA.chromeMac, expected: { ...human, deviceType: "desktop", browser: "Chrome", os: "macOS", osVersion: "10.15.7" } },
  { name: "Edge on macOS", ua: UA.edgeMac, expected: { ...human, deviceType: "desktop", browser: "Edge", browserMajor: 120, os: "macOS" } },
  {
    name: "Firefox on Linux",
    ua: UA.firefoxLinux,
    expected: { ...human, deviceType: "desktop", browser: "Firefox", browserVersion: "121.0", os: "Linux", osVersion: null, deviceVendor: null, deviceModel: null }
  },
  // iOS
  {
    name: "Mobile Safari on iPhone → Safari, mobile",
    ua: UA.safariIphone,
    expected: {
      ...human,
      deviceType: "mobile",
      browser: "Safari",
      browserVersion: "17.2",
      browserMajor: 17,
      os: "iOS",
      osVersion: "17.2.1",
      deviceVendor: "Apple",
      deviceModel: "iPhone"
    }
  },
  {
    name: "Safari with a major-only version → 17.0",
    ua: UA.safariIphoneMajorOnly,
    expected: { ...human, deviceType: "mobile", browser: "Safari", browserVersion: "17.0", browserMajor: 17, os: "iOS", osVersion: "17.0" }
  },
  {
    name: "Safari on iPad → tablet",
    ua: UA.safariIpad,
    expected: { ...human, deviceType: "tablet", browser: "Safari", browserVersion: "16.6", os: "iOS", osVersion: "16.6", deviceVendor: "Apple", deviceModel: "iPad" }
  },
  { name: "Chrome on iPad → tablet", ua: UA.chromeIpad, expected: { ...human, deviceType: "tablet", browser: "Chrome", browserVersion: "120.0", os: "iOS" } },
  {
    name: "Chrome (CriOS) on iPhone",
    ua: UA.chromeIphone,
    expected: { ...human, deviceType: "mobile", browser: "Chrome", browserVersion: "120.0", browserMajor: 120, os: "iOS", osVersion: "17.1" }
  },
  { name: "Firefox (FxiOS) on iPhone", ua: UA.firefoxIphone, expected: { ...human, deviceType: "mobile", browser: "Firefox", browserVersion: "121.0", os: "iOS" } },
  { name: "iPod touch → mobile", ua: UA.ipodTouch, expected: { ...human, deviceType: "mobile", browser: "Safari", browserVersion: "12.1", os: "iOS", osVersion: "12.5.7" } },
  // Android
  {
    name: "Chrome on Pixel 8 (Android + Mobile)",
    ua: UA.chromePixel,
    expected: {
      ...human,
      deviceType: "mobile",
      browser: "Chrome",
      browserVersion: "120.0",
      browserMajor: 120,
      os: "Android",
      osVersion: "14",
      deviceVendor: "Google",
      deviceModel: "Pixel 8"
    }
  },
  { name: "Chrome reduced UA 'Android 10; K' Mobile", ua: UA.chromeAndroidReduced, expected: { ...human, deviceType: "mobile", os: "Android", osVersion: "10" } },
  { name: "Android without Mobile → tablet", ua: UA.chromeAndroidTabletNoModel, expected: { ...human, deviceType: "tablet", os: "Android", osVersion: "13" } },
  {
    name: "Galaxy Tab S9 (SM-X700) → tablet",
    ua: UA.chromeGalaxyTab,
    expected: { ...human, deviceType: "tablet", browser: "Chrome", deviceVendor: "Samsung", deviceModel: "SM-X700" }
  },
  { name: "Galaxy Tab S7 (SM-T870) → tablet", ua: UA.chromeGalaxyTabS7, expected: { ...human, deviceType: "tablet", osVersion: "12" } },
  {
    name: "Samsung Internet on Galaxy S23",
    ua: UA.samsungInternet,
    expected: {
      ...human,
      deviceType: "mobile",
      browser: "Samsung Internet",
      browserVersion: "23.0",
      browserMajor: 23,
      os: "Android",
      osVersion: "13",
      deviceVendor: "Samsung",
      deviceModel: "SM-S918B"
    }
  },
  { name: "Samsung Internet on a tablet", ua: UA.samsungInternetTablet, expected: { ...human, deviceType: "tablet", browser: "Samsung Internet" } },
  { name: "Firefox on Android (Mobile)", ua: UA.firefoxAndroid, expected: { ...human, deviceType: "mobile", browser: "Firefox", browserVersion: "121.0", os: "Android", osVersion: "14" } },
  { name: "Android stock browser 4.4", ua: UA.androidStock, expected: { ...human, deviceType: "mobile", browser: "Android Browser", browserVersion: "4.0", osVersion: "4.4.2" } },
  { name: "Galaxy Watch (wearable) → mobile", ua: UA.galaxyWatch, expected: { ...human, deviceType: "mobile", os: "Android" } },
  { name: "Cubot phone is not a bot", ua: UA.cubotPhone, expected: { ...human, deviceType: "mobile" } },
  { name: "Windows Phone is mobile, version not NT-mapped", ua: UA.windowsPhone, expected: { ...human, deviceType: "mobile", os: "Windows Phone", osVersion: "10.0" } },
  // in-app webviews are humans
  {
    name: "Facebook in-app browser on iOS",
    ua: UA.facebookIos,
    expected: { ...human, deviceType: "mobile", browser: "Facebook", browserVersion: null, browserMajor: null, os: "iOS", osVersion: "17.1.2" }
  },
  {
    name: "Facebook in-app browser on Android",
    ua: UA.facebookAndroid,
    expected: { ...human, deviceType: "mobile", browser: "Facebook", browserVersion: "442.0", browserMajor: 442, os: "Android" }
  },
  {
    name: "Instagram in-app browser on iOS",
    ua: UA.instagramIos,
    expected: { ...human, deviceType: "mobile", browser: "Instagram", browserVersion: "309.0", browserMajor: 309, os: "iOS", osVersion: "17.1" }
  },
  {
    name: "Instagram in-app browser on Android",
    ua: UA.instagramAndroid,
    expected: { ...human, deviceType: "mobile", browser: "Instagram", browserVersion: "312.1", deviceVendor: "Samsung" }
  },
  { name: "Pinterest in-app browser is human", ua: UA.pinterestIos, expected: { ...human, deviceType: "mobile", os: "iOS" } },
  { name: "LinkedIn in-app browser is human", ua: UA.linkedinAppIos, expected: { ...human, deviceType: "mobile", os: "iOS" } },
  { name: "Snapchat in-app browser is human", ua: UA.snapchatIos, expected: { ...human, deviceType: "mobile", os: "iOS" } },
  { name: "Twitter in-app browser is human", ua: UA.twitterIos, expected: { ...human, deviceType: "mobile", os: "iOS" } },
  // smart TV: the UA's class is neither mobile nor tablet (documented choice: desktop)
  { name: "Samsung smart TV → desktop", ua: UA.samsungTv, expected: { ...human, deviceType: "desktop" } },
  // bots
  { name: "Googlebot", ua: UA.googlebot, expected: bot },
  { name: "Googlebot smartphone (Android Mobile) is still a bot", ua: UA.googlebotSmartphone, expected: bot },
  { name: "Googlebot desktop with Chrome token", ua: UA.googlebotDesktopChrome, expected: bot },
  { name: "Bingbot", ua: UA.bingbot, expected: bot },
  { name: "YandexBot", ua: UA.yandexbot, expected: bot },
  { name: "DuckDuckBot", ua: UA.duckduckbot, expected: bot },
  { name: "AhrefsBot", ua: UA.ahrefs, expected: bot },
  { name: "GPTBot", ua: UA.gptbot, expected: bot },
  { name: "Applebot (Safari-like UA)", ua: UA.applebot, expected: bot },
  { name: "generic crawler token", ua: UA.genericCrawler, expected: bot },
  { name: "generic spider token", ua: UA.genericSpider, expected: bot },
  { name: "curl", ua: UA.curl, expected: bot },
  { name: "python-requests", ua: UA.pythonRequests, expected: bot },
  { name: "facebookexternalhit", ua: UA.facebookExternalHit, expected: bot },
  { name: "Twitterbot", ua: UA.twitterbot, expected: bot },
  { name: "LinkedInBot", ua: UA.linkedinbot, expected: bot },
  { name: "Slackbot", ua: UA.slackbot, expected: bot },
  { name: "Discordbot", ua: UA.discordbot, expected: bot },
  { name: "TelegramBot", ua: UA.telegrambot, expected: bot },
  { name: "WhatsApp preview fetcher", ua: UA.whatsapp, expected: bot },
  { name: "Pinterest fetcher", ua: UA.pinterestbot, expected: bot },
  { name: "HeadlessChrome", ua: UA.headlessChrome, expected: { ...bot, os: "Windows", osVersion: "10/11" } },
  { name: "Puppeteer", ua: UA.puppeteer, expected: bot },
  { name: "Playwright", ua: UA.playwright, expected: bot },
  { name: "Selenium", ua: UA.selenium, expected: bot },
  { name: "PhantomJS", ua: UA.phantomjs, expected: bot },
  // unknown
  {
    name: "missing UA → nulls, desktop",
    ua: undefined,
    expected: {
      isBot: false,
      deviceType: "desktop",
      browser: null,
      browserVersion: null,
      browserMajor: null,
      os: null,
      osVersion: null,
      deviceVendor: null,
      deviceModel: null
    }
  },
  {
    name: "empty UA → nulls, desktop",
    ua: "",
    expected: { isBot: false, deviceType: "desktop", browser: null, browserVersion: null, browserMajor: null, os: null, osVersion: null }
  },
  { name: "whitespace UA → nulls", ua: "   ", expected: { isBot: false, browser: null, os: null, deviceVendor: null } }
]

const pick = (info: DeviceInfo, keys: ReadonlyArray<string>) =>
  Object.fromEntries(keys.map((key) => [key, (info as Record<string, unknown>)[key]]))

describe("parseDevice — real-world User-Agents", () => {
  it("has at least 40 cases", () => {
    assert.isAtLeast(cases.length, 40)
  })

  it.each(cases)("$name", ({ expected, ua }) => {
    const info = parseDevice(ua)
    assert.deepStrictEqual(pick(info, Object.keys(expected)), expected)
  })

  it.each(cases)("$name (uncached path agrees)", ({ expected, ua }) => {
    const info = parseDeviceUncached(ua)
    assert.deepStrictEqual(pick(info, Object.keys(expected)), expected)
  })
})

describe("parseDevice — Windows versions from the NT token", () => {
  const win = (nt: string) => `Mozilla/5.0 (Windows NT ${nt}; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36`
  it.each([
    { nt: "10.0", expected: "10/11" },
    { nt: "6.3", expected: "8.1" },
    { nt: "6.2", expected: "8" },
    { nt: "6.1", expected: "7" },
    { nt: "6.0", expected: "6.0" },
    { nt: "5.1", expected: "5.1" },
    { nt: "5.0", expected: "5.0" }
  ])("Windows NT $nt → $expected", ({ expected, nt }) => {
    const info = parseDevice(win(nt))
    assert.strictEqual(info.os, "Windows")
    assert.strictEqual(info.osVersion, expected)
  })

  it("vectors in real UAs", () => {
    assert.strictEqual(parseDevice(UA.chromeWin81).osVersion, "8.1")
    assert.strictEqual(parseDevice(UA.chromeWin8).osVersion, "8")
    assert.strictEqual(parseDevice(UA.chromeVista).osVersion, "6.0")
    assert.strictEqual(parseDevice(UA.firefoxXp).osVersion, "5.1")
  })
})

describe("parseDevice — macOS / iOS versions", () => {
  it.each([
    { token: "10_15_7", expected: "10.15.7" },
    { token: "10_14_6", expected: "10.14.6" },
    { token: "11_7_10", expected: "11.7.10" },
    { token: "14_2_1", expected: "14.2.1" },
    { token: "10_9", expected: "10.9" }
  ])("Mac OS X $token → macOS $expected", ({ expected, token }) => {
    const info = parseDevice(
      `Mozilla/5.0 (Macintosh; Intel Mac OS X ${token}) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 Safari/605.1.15`
    )
    assert.strictEqual(info.os, "macOS")
    assert.strictEqual(info.osVersion, expected)
  })

  it.each([
    { token: "17_2_1", expected: "17.2.1" },
    { token: "16_6", expected: "16.6" },
    { token: "15_8_2", expected: "15.8.2" },
    { token: "12_5_7", expected: "12.5.7" }
  ])("iPhone OS $token → iOS $expected", ({ expected, token }) => {
    const info = parseDevice(
      `Mozilla/5.0 (iPhone; CPU iPhone OS ${token} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1`
    )
    assert.strictEqual(info.os, "iOS")
    assert.strictEqual(info.osVersion, expected)
    assert.strictEqual(info.deviceType, "mobile")
  })
})

describe("parseDevice — device type from client signals", () => {
  // a Mac UA says nothing about touch (iPadOS Safari sends it in desktop mode)
  it.each([
    { name: "touch + narrow viewport → mobile", ua: UA.safariMac, client: { touchPoints: 5, viewportWidth: 390 }, expected: "mobile" },
    { name: "touch + wide viewport → tablet (iPadOS desktop UA)", ua: UA.safariMac, client: { touchPoints: 5, viewportWidth: 1024 }, expected: "tablet" },
    { name: "viewport 767 → mobile", ua: UA.chromeWin10, client: { touchPoints: 1, viewportWidth: 767 }, expected: "mobile" },
    { name: "viewport 768 → tablet", ua: UA.chromeWin10, client: { touchPoints: 1, viewportWidth: 768 }, expected: "tablet" },
    { name: "no touch, narrow viewport → desktop", ua: UA.chromeWin10, client: { touchPoints: 0, viewportWidth: 390 }, expected: "desktop" },
    { name: "touch without viewport decides nothing", ua: UA.safariMac, client: { touchPoints: 5, screenWidth: 390 }, expected: "desktop" },
    { name: "viewport without touch points → desktop", ua: UA.safariMac, client: { viewportWidth: 390 }, expected: "desktop" },
    { name: "no UA, touch + narrow → mobile", ua: undefined, client: { touchPoints: 5, viewportWidth: 400 }, expected: "mobile" },
    { name: "iPhone UA wins over a wide touch viewport", ua: UA.safariIphone, client: { touchPoints: 5, viewportWidth: 1024 }, expected: "mobile" },
    { name: "iPad UA wins over a narrow touch viewport", ua: UA.safariIpad, client: { touchPoints: 5, viewportWidth: 320 }, expected: "tablet" },
    { name: "Android tablet UA wins over a narrow viewport", ua: UA.chromeGalaxyTab, client: { touchPoints: 5, viewportWidth: 400 }, expected: "tablet" },
    { name: "bot wins over client signals", ua: UA.googlebotSmartphone, client: { touchPoints: 5, viewportWidth: 400 }, expected: "bot" },
    { name: "headless bot wins over client signals", ua: UA.headlessChrome, client: { touchPoints: 5, viewportWidth: 1024 }, expected: "bot" }
  ] satisfies ReadonlyArray<{ name: string; ua: string | undefined; client: ClientDevice; expected: string }>)(
    "$name",
    ({ client, expected, ua }) => {
      assert.strictEqual(parseDevice(ua, client).deviceType, expected)
    }
  )
})

describe("parseDevice — client fields", () => {
  const full: ClientDevice = {
    screenWidth: 1920,
    screenHeight: 1080,
    viewportWidth: 1440,
    viewportHeight: 900,
    pixelRatio: 2,
    colorDepth: 24,
    language: "en-GB",
    languages: ["en-GB", "en", "de"],
    timezone: "Europe/London",
    timezoneOffset: 0,
    deviceMemory: 8,
    hardwareConcurrency: 10,
    touchPoints: 0,
    cookiesEnabled: true,
    doNotTrack: "1"
  }

  it("copies every client field as sent", () => {
    const info = parseDevice(UA.chromeMac, full)
    for (const [key, value] of Object.entries(full)) {
      assert.deepStrictEqual((info as Record<string, unknown>)[key], value, key)
    }
  })

  it("fields not sent stay absent (not null)", () => {
    const info = parseDevice(UA.chromeMac, { viewportWidth: 800 })
    assert.strictEqual(info.viewportWidth, 800)
    for (const key of Object.keys(full)) {
      if (key !== "viewportWidth") assert.isFalse(Object.hasOwn(info, key), key)
    }
  })

  it("no client → no client keys at all", () => {
    const info = parseDevice(UA.chromeMac)
    for (const key of Object.keys(full)) assert.isFalse(Object.hasOwn(info, key), key)
  })

  it("doNotTrack null and false are kept as sent", () => {
    assert.strictEqual(parseDevice(UA.chromeMac, { doNotTrack: null }).doNotTrack, null)
    assert.strictEqual(parseDevice(UA.chromeMac, { doNotTrack: false }).doNotTrack, false)
    assert.isTrue(Object.hasOwn(parseDevice(UA.chromeMac, { doNotTrack: null }), "doNotTrack"))
  })

  it("unknown extra client keys are not copied", () => {
    const client = { screenWidth: 100, evil: "x" } as unknown as ClientDevice
    assert.isFalse(Object.hasOwn(parseDevice(UA.chromeMac, client), "evil"))
  })

  it("client data never leaks through the UA cache", () => {
    const ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 leak-test"
    const first = parseDevice(ua, { touchPoints: 5, viewportWidth: 390, language: "fr" })
    assert.strictEqual(first.deviceType, "mobile")
    assert.strictEqual(first.language, "fr")
    const second = parseDevice(ua)
    assert.strictEqual(second.deviceType, "desktop")
    assert.isFalse(Object.hasOwn(second, "language"))
    assert.isFalse(Object.hasOwn(second, "touchPoints"))
  })
})

describe("UA cache (bounded LRU)", () => {
  it("returns the cached parse for a repeated UA", () => {
    const cache = makeUserAgentCache(10)
    const first = cache.get(UA.chromeWin10)
    assert.strictEqual(cache.get(UA.chromeWin10), first)
    assert.strictEqual(cache.size(), 1)
  })

  it("evicts the least recently used entry at capacity", () => {
    const cache = makeUserAgentCache(2)
    const a = cache.get(UA.chromeWin10)
    const b = cache.get(UA.safariMac)
    assert.strictEqual(cache.get(UA.chromeWin10), a) // a is now most recent
    cache.get(UA.firefoxLinux) // evicts b
    assert.strictEqual(cache.size(), 2)
    assert.strictEqual(cache.get(UA.chromeWin10), a)
    const bAgain = cache.get(UA.safariMac)
    assert.notStrictEqual(bAgain, b)
    assert.deepStrictEqual(bAgain, b)
    assert.strictEqual(cache.size(), 2)
  })

  it("never grows beyond its capacity", () => {
    const cache = makeUserAgentCache(50)
    for (let i = 0; i < 500; i++) cache.get(`Mozilla/5.0 (X11; Linux x86_64) Firefox/${i}.0`)
    assert.strictEqual(cache.size(), 50)
  })

  it("capacity 0 disables caching", () => {
    const cache = makeUserAgentCache(0)
    const a = cache.get(UA.chromeWin10)
    assert.notStrictEqual(cache.get(UA.chromeWin10), a)
    assert.strictEqual(cache.size(), 0)
  })
})

describe("isBotUserAgent", () => {
  it("is false for a missing UA and for ordinary browsers", () => {
    assert.isFalse(isBotUserAgent(undefined))
    assert.isFalse(isBotUserAgent(UA.chromeWin10))
    assert.isFalse(isBotUserAgent(UA.instagramIos))
  })

  it("catches automation tokens isbot's list may miss", () => {
    assert.isTrue(isBotUserAgent(UA.puppeteer))
    assert.isTrue(isBotUserAgent("Mozilla/5.0 (Macintosh) Safari/605.1.15 HeadlessChrome"))
  })
})

describe("parseDevice — properties", () => {
  it.prop(
    "never throws on arbitrary strings; well-formed result",
    [Schema.String],
    ([ua]) => {
      const info = parseDevice(ua)
      assert.include(DEVICE_TYPES, info.deviceType)
      if (info.isBot) assert.strictEqual(info.deviceType, "bot")
      if (info.browserMajor !== null) assert.isTrue(Number.isInteger(info.browserMajor))
      if (info.browserVersion !== null) assert.match(info.browserVersion, /^\d+\.\d+$/)
      for (const key of ["browser", "browserVersion", "browserMajor", "os", "osVersion", "deviceVendor", "deviceModel"]) {
        assert.notStrictEqual((info as Record<string, unknown>)[key], undefined, key)
      }
    },
    { arbitrary: { runs: 1000 } }
  )

  it.prop("never throws with arbitrary client data; client fields copied", [Schema.String, ClientDevice], ([ua, client]) => {
    const info = parseDevice(ua, client)
    assert.include(DEVICE_TYPES, info.deviceType)
    for (const [key, value] of Object.entries(client)) {
      assert.deepStrictEqual((info as Record<string, unknown>)[key], value, key)
    }
  })

  it.prop("UA-appended noise after a real UA never throws", [Schema.String], ([noise]) => {
    const info = parseDevice(`${UA.chromePixel} ${noise}`)
    assert.include(DEVICE_TYPES, info.deviceType)
  })

  it.prop("cached and uncached parses agree", [Schema.String], ([ua]) => {
    assert.deepStrictEqual(parseDevice(ua), parseDeviceUncached(ua))
  })
})
