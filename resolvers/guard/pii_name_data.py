"""Data of the Chinese name detector: surnames by frequency, and words that look like names."""

from __future__ import annotations

# The commonest single-character surnames, commonest first (about the top 100 of the 2020
# household register statistics); the order breaks ties between two possible readings.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩邓冯曹彭曾肖田董潘袁蔡蒋余于杜叶程"
    "魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾"
    "龚邵万覃武钱戴严欧莫孔向常汤康易乔赖文施洪"
)

_COMPOUND_SURNAMES = "欧阳 司马 上官 诸葛 东方 皇甫 慕容 令狐 司徒 夏侯 公孙 端木 南宫"
COMPOUND_SURNAMES = frozenset(_COMPOUND_SURNAMES.split())

# Words, and starts of city names, that begin with a surname character: after a cue they are
# still words (`很高兴同学们`, `我是高中生`, `我是石家庄人`), so a name never starts with one.
_WORDS = """
    王国 王者 王牌 王子 王朝 李子 张开 张贴 张望 张扬 刘海 陈列 陈述 陈旧 杨树 杨柳 黄金 黄色
    黄瓜 黄昏 黄河 黄山 周末 周围 周年 周期 周边 周到 周一 周二 周三 周四 周五 周六 周日 孙子
    孙女 马上 马路 马车 马桶 马虎 胡说 胡同 胡子 胡乱 胡椒 何时 何处 何况 何必 何等 林业 林子
    罗马 罗列 高兴 高中 高级 高考 高手 高速 高度 高铁 高温 高峰 高校 高层 高端 高效 高价 高血
    高大 高新 郑重 谢谢 谢意 许多 许可 许久 韩国 韩语 韩剧 曾经 肖像 田地 田野 董事 余额 余下
    于是 杜绝 叶子 叶片 程序 程度 苏州 苏醒 丁点 任何 任务 任意 任性 任职 沈阳 钟表 钟点 陆地
    陆续 陆军 范围 范例 石头 石油 金额 金属 金融 金色 金钱 金牌 夏天 夏季 付款 付出 付费 方法
    方面 方向 方便 方式 方案 熊猫 白天 白色 白菜 白领 白酒 江苏 江西 江湖 江南 段落 雷电 雷达
    龙头 黎明 史上 陶瓷 贺卡 毛巾 毛衣 毛病 顾客 顾问 万一 万元 万分 武汉 武器 武术 钱包 戴着
    严格 严重 严肃 欧洲 欧元 莫名 向前 向后 向上 向下 向来 常常 常见 常用 常规 康复 易懂 文件
    文化 文章 文字 文学 文本 施工 洪水 东方红 宋朝 唐朝 秦朝 周朝 夏朝
    石家 郑州 常州 许昌 金华 江门 龙岩 贺州 邵阳 马鞍 黄冈 黄石 孟州
"""
WORDS = frozenset(_WORDS.split())

# Characters that end a given name after a cue (`我叫李明想问`): particles, pronouns, common
# verbs and the first characters of the cues themselves.
NOT_GIVEN_NAME = frozenset(
    "的地得了着过是在和与及或并但而说讲问要想会能可需刚才正已还也就都又再很太最真今昨来去到从"
    "给对把被让跟向为于之其所此每各某我你您他她它们这那哪谁什怎几多少吗呢吧啊呀哦嗯哈啦嘛"
    "年月日号岁点等电手机邮微身卡先女老同经医教主律博护师总院校工会处局科部人做用买看听写找住当"
    "签收寄填领送"
)
