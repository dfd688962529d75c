"""Concept families: rules built from lexicons (``detectors/rules/_concepts.yaml``) combined by
structure fire on combinations nobody wrote down, and stay quiet in negation, reporting and
non-subject contexts.

Every text here was written for this test (none is quoted from ../shared/corpus), and the
combinatorial tests build their sentences from the lexicons themselves: every pair or triple of
interchangeable words must fire the same way.
"""

from __future__ import annotations

import itertools
import random

import pytest

from bench import corpus
from detectors import detect
from detectors.engine import default_detector

LEX = default_detector().lexicon.vocab


def cats(text: str) -> set[str]:
    return {f.category for f in detect(text)}


def sample(name: str, k: int, seed: int = 11, skip: tuple[str, ...] = ()) -> list[str]:
    words = [w for w in LEX[name] if w not in skip]
    rng = random.Random(seed)
    return words if len(words) <= k else rng.sample(words, k)


# ---------------------------------------------------------------- hand-written, one per family

POSITIVE = [
    # guarantees without 保/包
    ("这期冲刺营有底气：没考进区重点，学费原数退还", "guarantee_promise"),
    ("一学期英语没提分，下学期免费续读", "guarantee_promise"),
    ("签订协议，确保孩子数学期末考到90分以上", "guarantee_promise"),
    ("近三年学员的重本率高达76%", "guarantee_promise"),
    ("去年85%的学员考入了市重点高中", "guarantee_promise"),
    ("仅用三周，孩子就能熟练掌握小数乘除法", "guarantee_promise"),
    # pre-school subject classes by content or age
    ("幼儿园大班识字课，每周两次，开学认读400字", "preschool_subject"),
    ("学龄前算术启蒙：20以内连加连减轻松学", "preschool_subject"),
    ("4岁半的孩子也能上的自然拼读课，试听免费", "preschool_subject"),
    ("暑假拼音集训营，入学前打好基础", "preschool_subject"),
    # photo search by what it does
    ("碰到难题不用愁，手机对准题目一扫，三秒给出解题步骤", "photo_search"),
    ("错题拍一拍，AI老师马上讲解", "photo_search"),
    ("智能作业批改小程序，上传即出答案", "photo_search"),
    # disguised subject training
    ("语文阅读素养班，每周精讲一篇中考现代文", "unlicensed_subject"),
    ("美术生文化课集训，英语数学双科提分", "unlicensed_subject"),
    ("明德教育暑期托管班，下午安排数学作业辅导", "unlicensed_subject"),
    ("东方补习学校秋季招生", "unlicensed_subject"),
    # superlatives and false affiliation
    ("全省最权威的高考志愿填报与物理冲刺课程", "false_claim"),
    ("沿用人大附中教学模式的初中数学培优班", "false_claim"),
    ("本套阅读教材由联合国儿童基金会推荐", "false_claim"),
    # anxiety marketing
    ("隔壁家孩子早就开始刷初中题了，你家还在玩？", "false_claim"),
    ("四年级这一年最关键，错过就再也追不上", "false_claim"),
    ("原来数学倒数第五，补了一个月冲进全班前十", "false_claim"),
    ("39元8节课，再送价值299元的教辅", "false_claim"),
    # competitions by cover names and what they come with
    ("少儿英语风采展示活动报名中，设一二三等奖", "competition_ranking"),
    ("“启航”杯小学数学挑战赛初赛准考证下载", "competition_ranking"),
    ("HBS冲刺营开课，带你刷透历年真题", "competition_ranking"),
    # teacher claims
    ("主讲老师是省中考英语出题人", "teacher_qualification"),
    ("化学老师在重点中学任教十余年", "teacher_qualification"),
    ("复旦在读硕士一对一辅导高中物理", "teacher_qualification"),
    ("名师均来自211院校，毕业班经验丰富", "teacher_qualification"),
    # prepaid packages
    ("钢琴课季卡、年卡同步开售，办年卡立减500", "prepaid_fees"),
    ("课时越买越便宜，报得越多送得越多", "prepaid_fees"),
    ("老学员续课享8折，本周截止", "prepaid_fees"),
    ("书法课一次报三个学期送一个月", "prepaid_fees"),
    # advance teaching and off-hours by date
    ("七年级数学先修课，暑假把下册学完", "advance_teaching"),
    ("高一化学衔接班8月5日开课", "off_hours_schedule"),
    ("寒假让孩子先学初一数学，开学不慌", "off_hours_schedule"),
    ("五年级就学完初中数学，升学更从容", "advance_teaching"),
    ("交300元订金即可锁定暑期班优惠价", "prepaid_fees"),
    ("某老师所在学校的班主任周末在家开小灶补英语", "teacher_qualification"),
    ("小区民宅里开了个初中物理补习小班", "unlicensed_subject"),
    # a second round of own wordings, across every family, then reporters' paraphrases of sales pitches,
    # then short banner texts (as OCR reads them off ad images)
    ("机构称参加其组织的“英才杯”并获奖，可优先被名校录取", "competition_ranking"),
    ("家长群里在传某“数学大师赛”的报名链接，报名费300元", "competition_ranking"),
    ("该机构每月举行一次学员排名考试，并张贴成绩榜单", "competition_ranking"),
    ("这位老师白天在学校上课，晚上在机构兼职带初三数学", "teacher_qualification"),
    ("机构介绍称老师曾参与过本市中考命题", "teacher_qualification"),
    ("该机构宣称所有老师都具有十年以上重点学校教学经验", "teacher_qualification"),
    ("某“自习室”内，有老师给初中生讲解物理习题", "unlicensed_subject"),
    ("打着“陪读”的旗号，为高中生补习英语", "unlicensed_subject"),
    ("宣传称该课程能让孩子的注意力提高三倍", "false_claim"),
    ("广告语为“选择我们，就是选择清华北大”", "false_claim"),
    ("称其为“某某教育部指定合作单位”，经查并无此事", "false_claim"),
    ("机构人员称孩子报名后下次考试一定能进班级前五", "guarantee_promise"),
    ("家长被要求一次性支付一学年的全部课时费", "prepaid_fees"),
    ("学生只需拍照上传作业，平台几秒钟就返回答案", "photo_search"),
    ("大班宝宝 拼音 识字 数学 三合一", "preschool_subject"),
    ("暑假班 语数外 火热报名中", "off_hours_schedule"),
    ("期末冲刺 提分30+", "guarantee_promise"),
    ("不会的题 一拍就会", "photo_search"),
    ("年卡特惠 仅限前50名", "prepaid_fees"),
    ("清北学霸 一对一带学", "teacher_qualification"),
    ("杯赛备考 真题精讲", "competition_ranking"),
    ("新初一 数学预科班", "advance_teaching"),
    ("高中物理 私人订制 上门辅导", "unlicensed_subject"),
    ("全城最低价 名额有限", "false_claim"),
    ("学前数学启蒙 10以内加减", "preschool_subject"),
    ("周末精品小班 初中数学", "off_hours_schedule"),
    ("课程无效全款退回", "guarantee_promise"),
    ("充1万送3千", "prepaid_fees"),
    ("机构开设“入学准备课”，教幼儿园大班孩子100以内加减法", "preschool_subject"),
    ("老师说现在的一年级默认孩子都学过拼音，幼儿园不学就晚了", "preschool_subject"),
    ("报名的多是五六岁的孩子，每周学三次英语和数学", "preschool_subject"),
    ("这个“学前识字”项目宣称让孩子入学前认识2000个汉字", "preschool_subject"),
    ("不少机构把课排到了寒假，高中数学每天两节", "off_hours_schedule"),
    ("端午节三天假期，初二物理集中授课", "off_hours_schedule"),
    ("暑期7月到8月连续上课，初三化学全程辅导", "off_hours_schedule"),
    ("机构表示上过他们课的学生中考基本都能上重点线", "guarantee_promise"),
    ("如果一学期下来成绩没有进步，可以申请退费", "guarantee_promise"),
    ("承诺孩子英语听力满分", "guarantee_promise"),
    ("家长反映，孩子用某App拍题抄答案，作业全对", "photo_search"),
    ("只需对准题目扫描，软件就会显示完整解题过程", "photo_search"),
    ("机构推出“一次交三年，优惠一万元”的活动", "prepaid_fees"),
    ("工作人员劝说家长购买120节课的大课包", "prepaid_fees"),
    ("宣传称师资全部来自北京四中、人大附中等名校", "teacher_qualification"),
    ("无证机构在写字楼里开设高中英语补习班", "unlicensed_subject"),
    ("培训机构组织“数学思维挑战赛”，成绩优异者可进入“尖子班”", "competition_ranking"),
    ("课程介绍称“学完保证孩子智商提高20分”", "false_claim"),
    ("广告称该课程是“国家级优质课程”", "false_claim"),
    ("前台说他们的幼儿班主要教认字、口算，为上小学做准备", "preschool_subject"),
    ("4岁半的女儿已经在机构学了一年英语单词", "preschool_subject"),
    ("课程顾问说，大班的孩子不提前学拼音，一年级老师讲得快会跟不上", "preschool_subject"),
    ("机构负责人称，只要跟着学，期末至少进步十个名次", "guarantee_promise"),
    ("工作人员承诺报名后孩子的成绩一定会有明显提升", "guarantee_promise"),
    ("合同里写明，达不到约定分数全额退还学费", "guarantee_promise"),
    ("这款学习机有拍照答疑功能，遇到不会的题拍一下就有讲解", "photo_search"),
    ("下载后拍下作业就能批改，错题还会给出正确答案", "photo_search"),
    ("该机构在国庆假期安排了初中数学和物理课程", "off_hours_schedule"),
    ("课表显示，周六上午是小学语文，周日下午是英语", "off_hours_schedule"),
    ("暑假集训营每天上6小时数学", "off_hours_schedule"),
    ("机构要求一次性缴纳两年学费共计两万余元", "prepaid_fees"),
    ("顾问推荐办理VIP卡，一次充值一万元可享七折", "prepaid_fees"),
    ("招生简章写明，主讲老师均为市重点中学现任教师", "teacher_qualification"),
    ("老师自称是区教研员，对考试方向很了解", "teacher_qualification"),
    ("机构组织学员参加某数学邀请赛，并以获奖情况作为分班依据", "competition_ranking"),
    ("宣传单上印着该机构学员在华罗庚金杯中获奖的名单", "competition_ranking"),
    ("该工作室未取得办学许可，在小区内开设初中数学辅导班", "unlicensed_subject"),
    ("所谓的托管班，每天下午都安排老师讲数学和英语", "unlicensed_subject"),
    ("机构宣称其课程由哈佛大学教授团队研发", "false_claim"),
    ("海报写着“全市第一的英语培训品牌”", "false_claim"),
    ("四年级学生在机构学习六年级的数学内容", "advance_teaching"),
    ("暑期班的内容是下学期的新课", "advance_teaching"),
    ("销售人员说，孩子在这学半年，一年级的拼音和计算就全会了", "preschool_subject"),
    ("我们这儿的课程就是把一年级上册的内容提前教给大班孩子", "preschool_subject"),
    ("工作人员介绍，学前班每天上午学语文数学，下午学英语", "preschool_subject"),
    ("家长群里推荐的识字班，专门招幼儿园中大班的孩子", "preschool_subject"),
    ("咨询老师称，暑假每天上午都有数学课，一直上到8月底", "off_hours_schedule"),
    ("周末两天都排满了，周六英语周日奥数", "off_hours_schedule"),
    ("工作人员表示，寒假期间照常开班，语数英都有", "off_hours_schedule"),
    ("老师拍着胸脯保证，上完这个班数学至少提高20分", "guarantee_promise"),
    ("他们承诺如果孩子考不进前十就退一半学费", "guarantee_promise"),
    ("去年我们班的学生全部考上了重点高中", "guarantee_promise"),
    ("这个软件只要把题拍下来，答案和步骤马上就出来了", "photo_search"),
    ("孩子用平板扫一下作业，系统自动给出正确答案", "photo_search"),
    ("课程顾问建议一次报一年，说这样最划算", "prepaid_fees"),
    ("充得越多，课时单价越低", "prepaid_fees"),
    ("授课的都是公立学校的在编老师，周末过来兼职", "teacher_qualification"),
    ("这位老师以前是中考命题组的，押题特别准", "teacher_qualification"),
    ("机构老师说参加这个杯赛拿奖对小升初很有帮助", "competition_ranking"),
    ("组织学生参加数学测评，按成绩排名发证书", "competition_ranking"),
    ("工作人员称，虽然叫美术班，但其实主要上数学和英语", "unlicensed_subject"),
    ("广告称该机构是全国唯一获得教育部认证的培训机构", "false_claim"),
    ("宣传页上写着“百分之九十九的家长都选择了我们”", "false_claim"),
    ("销售说他们的进度比学校快一个学期", "advance_teaching"),
    ("小学五年级就开始讲初中的方程", "advance_teaching"),
    ("大班下学期的孩子都来我们这学拼音了，一年级开学轻轻松松", "preschool_subject"),
    ("学前儿童数学思维启蒙，20以内口算天天练", "preschool_subject"),
    ("K3宝宝英语自然拼读班报名中", "preschool_subject"),
    ("幼儿园孩子识字量达到1000字，上小学领先一大步", "preschool_subject"),
    ("准一年级专属：拼音+识字+数学三科全能班", "preschool_subject"),
    ("5岁的孩子要开始学写字和算数了，不然上学跟不上", "preschool_subject"),
    ("题目不会做？用手机拍一下，立刻得到详细解析", "photo_search"),
    ("AI智能批改作业，家长不用再检查", "photo_search"),
    ("扫一扫练习册上的二维码，查看本页答案", "photo_search"),
    ("作文拍照上传，三秒出评分和范文", "photo_search"),
    ("2024年全国小学生数学素养大赛报名，获奖证书可用于小升初", "competition_ranking"),
    ("迎春杯的备考资料已发群里", "competition_ranking"),
    ("本次英语能力测评设全国排名，前10%颁发金奖", "competition_ranking"),
    ("华数之星选拔赛报名开启", "competition_ranking"),
    ("三年级暑假把四年级数学上册全部学完", "advance_teaching"),
    ("初中物理先修班，六升七暑期开课", "advance_teaching"),
    ("小学就掌握初中几何证明", "advance_teaching"),
    ("每周六日全天上课，初中数理化同步辅导", "off_hours_schedule"),
    ("寒假集训1月20日开营，高三数学一轮复习", "off_hours_schedule"),
    ("晚上8点到10点，线下高中物理提高课", "off_hours_schedule"),
    ("国庆七天不休息，初三英语冲刺", "off_hours_schedule"),
    ("报名即可享受一年学费8折优惠，一次性缴清", "prepaid_fees"),
    ("办理学习卡充值5000送1000", "prepaid_fees"),
    ("课时包：120课时，一次购买更优惠", "prepaid_fees"),
    ("两年课程打包价，仅限本周", "prepaid_fees"),
    ("授课教师全部来自省重点中学在职骨干", "teacher_qualification"),
    ("特聘高考阅卷组长亲自授课", "teacher_qualification"),
    ("带课老师有20年重点高中毕业班经验", "teacher_qualification"),
    ("北大在读博士一对一辅导", "teacher_qualification"),
    ("不提分，全额退费", "guarantee_promise"),
    ("签约保录重点高中，达不到目标退还全部学费", "guarantee_promise"),
    ("往年学员平均提分35分，90%以上考入省重点", "guarantee_promise"),
    ("一对一辅导，确保孩子考上理想学校", "guarantee_promise"),
    ("行业内唯一拥有自主知识产权的数学思维课程", "false_claim"),
    ("与北京大学联合打造的初中语文阅读体系", "false_claim"),
    ("你的孩子已经落后了，再不补就来不及了", "false_claim"),
    ("原价3980，今日特价998，仅剩3个名额", "false_claim"),
    ("高端家政服务，阿姨可辅导小学作业", "unlicensed_subject"),
    ("周末小饭桌，老师辅导语文数学作业", "unlicensed_subject"),
    ("大学生上门家教，初高中数学物理", "unlicensed_subject"),
    ("私教课：初二英语，在学员家中上课", "unlicensed_subject"),
]

NEGATIVE = [
    # policy notices, enforcement and commentary that quote the banned words
    "市场监管部门提示：培训广告不得含有“考不上退费”“签约提分”等保证性承诺",
    "严禁以“素养班”“思维班”名义开展学科类培训",
    "通报：某机构以年卡、充值卡等形式变相收取超过3个月的费用，已责令整改",
    "不得使用“最佳”“第一”“顶尖”等绝对化用语",
    "专家提醒，拍照搜题类App让孩子依赖答案，家长要警惕",
    "教育局明确，幼儿园不得教授拼音、识字、算术等小学课程内容",
    "所谓“隔壁家孩子已经学完了”的说法属于贩卖焦虑",
    "执法人员查处一家以“辅导中心”名义违规开展学科类培训的机构",
    # non-subject context: sport, art, science, coding, adult training, sport/art camps
    "少儿篮球冬令营1月20日开营，每天训练3小时",
    "4-6岁创意美术启蒙课，孩子用色彩表达想象",
    "全市最大的青少年足球训练基地今日启用",
    "乐高机器人挑战赛颁发一二三等奖及证书",
    "大学英语四六级冲刺班，考研英语同步招生",
    "育婴师职业技能培训班已培训学员3000人",
    "暑期非遗手工夏令营，孩子们学做剪纸",
    "钢琴考级报名截止到5月20日",
    # ordinary news and parenting prose
    "孩子上小学后要养成按时完成作业的习惯",
    "暑假是溺水事故高发期，家长务必看护好孩子",
    "这家超市的会员卡可以积分换购",
    "该校今年的高考本科上线率为全县最高",
    "球队从积分榜倒数一跃冲进前三",
    # adult and university training: not 双减 training of school pupils
    "成人英语一对一口语陪练，职场提升",
    "考研数学暑期集训营，每天8小时",
    "暑假带孩子去西藏旅游，提前适应高原气候",
    # more notices, public venues, school news, adult and non-training memberships
    "区教育局关于开展2024年暑期校外培训专项治理的通知：严禁学科类培训机构违规开展暑期培训。",
    "市场监管局发布消费提示：警惕“保过”“提分”“名师”等培训广告陷阱，理性选择培训机构。",
    "家长反映，某机构以“研学”名义组织学生学习数学，教育部门已介入调查。",
    "根据规定，非学科类培训机构预收费不得超过5000元，不得以年卡、季卡等形式收费。",
    "本校篮球队获得全市中学生篮球联赛冠军，校长为队员颁发奖牌。",
    "少儿街舞暑期班7月15日开课，每周二四六下午上课，零基础可报。",
    "成人钢琴一对一课程，时间灵活，适合上班族。",
    "社区老年大学书法班开学，学员平均年龄65岁。",
    "科技馆暑期推出航天主题研学营，带领孩子了解火箭发射原理。",
    "该校2023年高考本科上线率为92%，较去年提高3个百分点。",
    "学而思网校宣布关闭学科类业务，转型素质教育。",
    "教育部公布2023-2025学年面向中小学生的全国性竞赛活动名单，共44项。",
    "孩子写作业时，家长不要一有问题就让孩子拍照搜答案。",
    "幼儿园要坚持以游戏为基本活动，不得提前教授小学课程内容。",
    "某培训机构因在广告中使用“最权威”“第一品牌”等用语被罚款2万元。",
    "暑假期间，图书馆为中小学生提供免费自习座位。",
    "大学生暑期支教团为山区孩子上了一堂生动的科学课。",
    "青少年宫美术班秋季报名开始，学费按学期收取。",
    "游泳馆推出暑期游泳培训班，每期12节课，费用980元。",
    "我们的舞蹈老师毕业于北京舞蹈学院，教龄10年。",
    "考研英语全年班，名师带你过国家线。",
    "新华社报道，多地开展校外培训“回头看”，严查隐形变异培训。",
    "请各校提醒家长不要为孩子报名参加违规举办的竞赛活动。",
    "乐高机器人编程课，8-12岁，周六上午上课，每期10节。",
    "市一中举行2024届高三毕业典礼，校长寄语毕业生。",
    "围棋冬令营结营，学员获得段位证书。",
    "教育局提醒：校外培训机构线上培训结束时间不得晚于21:00。",
    "这家超市推出年卡会员，每年缴费199元享受折扣。",
    "开学后孩子们很快适应了新的班级",
    "暑假里孩子要提前适应小学的作息时间，家长可以多陪伴",
    "科学实验冬令营，带孩子探索物理化学的奥秘，动手做实验。",
    "编程夏令营：7天掌握Python基础，结营颁发证书，优秀学员推荐参加机器人竞赛。",
    "少儿围棋定级赛周六举行，获胜者可晋级段位赛。",
    "艺考生专业课集训，美术联考冲刺，名师改画。",
    # penalty decisions and enforcement reports describing what an institution did
    "经查，当事人于2022年7月在小区内开展初中数学一对一培训，收取费用共计3.6万元。",
    "执法人员现场检查时，发现该机构正在为12名小学生讲授数学课。",
    "该机构在公众号发布“暑期提分班”广告，被市场监管部门立案调查。",
    "当事人发布的广告中含有“全市第一”“最权威”等绝对化用语，违反了广告法第九条。",
    "某机构以“一对一辅导”为名收取学费后跑路，家长投诉无门。",
    "区教育局联合公安、市场监管等部门查处无证培训点3处，遣散学生40余名。",
    "通报指出，部分机构仍在节假日组织学科类培训，已责令停业整改。",
    "家长反映孩子在某App上拍照搜题抄答案，学校已约谈家长加强监督。",
    "关于进一步规范校外培训机构收费行为的通知：各培训机构不得一次性收取超过3个月的费用。",
    "近期有不法分子以“高端家政”“住家教师”名义开展学科培训，请广大家长提高警惕。",
    "查处通报：某公司在居民楼内违规开展初中数学一对一培训，已责令停止。",
    "少年宫暑期开设书法、国画、舞蹈等兴趣班，每周两次，欢迎报名。",
    "青少年足球夏令营，营员将参加多场友谊赛，表现优秀者颁发证书。",
    "航模科技冬令营报名启动，带孩子动手制作飞机模型。",
    "游泳暑期班，4-6岁孩子也可报名，小班教学，保证安全。",
    "职业技能提升行动：面点师、电工培训班免费报名，培训合格颁发证书。",
    "教师资格证考试培训，考点全覆盖，通过率高。",
    "成人自考本科，学信网可查，两年毕业。",
    "关于严禁在职中小学教师有偿补课的规定，一经查实严肃处理。",
    "教育部办公厅关于做好中小学生竞赛管理工作的通知明确，竞赛不得与升学挂钩。",
    "家长应理性看待各类“提分”“保过”宣传，不要盲目报班。",
    "全区开展“双减”督查，重点检查培训机构是否存在超前超标培训。",
    "暑期公益托管服务由学校组织，内容包括作业辅导、阅读、体育活动。",
    "某幼儿园被通报：违规教授拼音、算术等小学课程内容。",
    "美术考级报名：1-10级，考生请于5月前完成报名缴费。",
    "国际象棋等级赛周末举行，前六名获得奖杯。",
    "钢琴课每节45分钟，按月缴费，不办卡不充值。",
    "我们是经审批的非学科类机构，收费时间跨度不超过3个月。",
    "舞蹈学校年终汇报演出圆满落幕，学员获得家长一致好评。",
    "记者暗访发现，部分机构仍以“思维训练”为名开展学科培训。",
    "学校组织学生参加科技节，展示机器人和编程作品。",
    "暑假期间，社区为双职工家庭的孩子提供免费看护，志愿者陪孩子做手工。",
    "市教育局公布白名单竞赛，提醒家长不要参加名单外的学科竞赛。",
    "孩子4岁了，每天在家听儿歌、看绘本，快乐成长。",
    "体育中心健身年卡限时优惠，办卡送私教课。",
]


@pytest.mark.parametrize("text,category", POSITIVE, ids=[t[:12] for t, _ in POSITIVE])
def test_family_examples_fire(text, category):
    assert category in cats(text), (text, [(f.rule_id, f.text, f.score) for f in detect(text)])


@pytest.mark.parametrize("text", NEGATIVE, ids=[t[:12] for t in NEGATIVE])
def test_hard_negatives_pass(text):
    assert not detect(text), (text, [(f.rule_id, f.text, f.score) for f in detect(text)])


def test_examples_here_are_not_from_the_corpora():
    if not corpus.available():
        pytest.skip("corpus not present")
    texts = [r.text for _, v, c in corpus.SETS for f in (v, c) for r in corpus.load(f)]
    for mine in [t for t, _ in POSITIVE] + NEGATIVE:
        assert not any(mine in t for t in texts), mine


# ---------------------------------------------------------------- combinations of concept words


def _all_fire(texts: list[str], category: str) -> None:
    missed = [t for t in texts if category not in cats(t)]
    assert not missed, f"{len(missed)}/{len(texts)} combinations did not fire {category}: {missed[:8]}"


def _none_fire(texts: list[str], category: str) -> None:
    fired = [t for t in texts if category in cats(t)]
    assert not fired, f"{len(fired)}/{len(texts)} negated combinations fired {category}: {fired[:8]}"


def test_failure_condition_times_refund():
    pairs = list(itertools.product(sample("failure_condition", 14, skip=("否则",)), sample("refund", 10)))
    _all_fire([f"数学冲刺班承诺：{f}，{r}" for f, r in pairs], "guarantee_promise")
    _none_fire([f"培训广告严禁宣传“{f}{r}”" for f, r in pairs[:40]], "guarantee_promise")


def test_outcome_metric_times_rate():
    metrics = sample("outcome_metric", 20)
    _all_fire([f"本校往届学员{m}达到{80 + i % 19}%" for i, m in enumerate(metrics)], "guarantee_promise")
    _none_fire([f"不得在广告中宣传{m}" for m in metrics], "guarantee_promise")


def test_capture_times_homework_times_instant_answer():
    triples = list(itertools.product(sample("capture", 8, skip=("镜头",)), ["作业", "难题", "试卷", "数学题"],
                                     sample("instant_answer", 6, skip=("讲解", "答疑"))))
    _all_fire([f"{c}{h}，{a}" for c, h, a in triples], "photo_search")
    _none_fire([f"专家提醒：{c}{h}就{a}，会让孩子产生依赖" for c, h, a in triples[:30]], "photo_search")


def test_age_band_times_content_times_class():
    ages = sample("age_band", 12, skip=("宝宝", "幼升小", "幼小", "k3", "周岁", "一年级新生"))
    contents = sample("preschool_content", 10, skip=("阅读", "书写"))
    forms = ["班", "启蒙课", "速成营", "强化训练", "课程"]
    combos = [(a, c, forms[i % len(forms)]) for i, (a, c) in enumerate(itertools.product(ages, contents))]
    _all_fire([f"{a}孩子{c}{f}火热招生" for a, c, f in combos], "preschool_subject")
    _none_fire([f"教育局规定：严禁面向{a}儿童开设{c}{f}" for a, c, f in combos[:40]], "preschool_subject")


def test_superlative_times_training():
    words = sample("superlative", 20)
    _all_fire([f"{w}的初中数学辅导机构，名师小班授课" for w in words], "false_claim")
    _none_fire([f"广告法规定，不得使用“{w}”等用语" for w in words], "false_claim")


def test_famous_school_times_affiliation():
    pairs = list(itertools.product(sample("famous_school", 10), sample("affiliation", 8, skip=("体系", "模式"))))
    _all_fire([f"{s}{a}英语课程，暑期班报名" for s, a in pairs], "false_claim")


def test_teacher_credential_times_teacher():
    creds = sample("teacher_credential", 16, skip=("一辈子", "几十年", "教龄", "从教", "执教", "现任", "在编"))
    _all_fire([f"主讲：{c}老师，初中数学小班授课" for c in creds], "teacher_qualification")
    _none_fire([f"{c}老师不得在校外培训机构兼职授课" for c in creds], "teacher_qualification")


def test_long_product_and_buy_more():
    prods = sample("long_product", 14)
    _all_fire([f"英语课{p}限时优惠，报名立减" for p in prods], "prepaid_fees")
    _none_fire([f"严禁以{p}等形式变相预收费" for p in prods], "prepaid_fees")
    _all_fire([f"数学课{w}，本周有效" for w in LEX["buy_more"]], "prepaid_fees")


def test_others_ahead_times_already():
    pairs = list(itertools.product(LEX["others_ahead"], sample("already", 5)))
    _all_fire([f"{o}{a}开始学下学期的课了" for o, a in pairs], "false_claim")
    _none_fire([f"专家提醒：“{o}{a}学完了”是典型的焦虑营销话术" for o, a in pairs], "false_claim")


def test_contest_times_trappings():
    pairs = list(itertools.product(sample("contest", 10, skip=("比赛", "联考", "等级考试", "奥林匹克", "奥赛")),
                                   sample("contest_trapping", 8, skip=("排名", "名次", "证书"))))
    _all_fire([f"小学数学{c}{t}公布" for c, t in pairs], "competition_ranking")
    _none_fire([f"青少年足球{c}{t}公布" for c, t in pairs if not any(w in c for w in ("学科", "素养", "思维"))],
               "competition_ranking")


def test_explanations_and_titles_are_chinese():
    import re

    for text, _ in POSITIVE:
        for f in detect(text):
            assert f.title and re.search(r"[\u4e00-\u9fff]", f.title)
            for line in f.explanation:
                assert re.search(r"[\u4e00-\u9fff]", line), line
                # no English words of more than one letter outside quoted terms and rule ids
                rest = re.sub(r"“[^”]*”|（规则 [a-z_.]+）|[a-z_]+\.[a-z_.]+", "", line)
                assert not re.search(r"\b(?:[a-z]{3,})\b", rest, re.I), line


def test_a_heading_of_forbidden_practices_governs_its_semicolon_list():
    """Items after "违规：" separated by semicolons are each under the heading, not only the first
    (which shares its sentence); the same items under a plain heading are findings."""
    items = "聘用在职中小学教师授课；周六开设初中数学班"
    assert detect("下列情形属于违规：以“托管”名义开展学科类培训；" + items) == []
    assert detect("检查发现的问题：" + items) == []
    found = {f.category for f in detect("本机构简介：专注少儿美术；" + items)}
    assert {"teacher_qualification", "off_hours_schedule"} <= found, found


# whole pages of institutions and offices that comply (written for this test, session 6): not one finding
COMPLIANT_PAGES = [
    """\
星辰美术工作室 | 首页 | 课程 | 师资 | 联系我们
关于我们：星辰美术工作室成立于2015年，已取得区教育局颁发的非学科类培训许可证，专注4-16岁青少年美术教育。
课程设置：创意美术（4-6岁）、少儿素描（7-12岁）、青少年速写与色彩（12-16岁）。
上课时间：周一至周五16:30-18:00，周六周日9:00-11:30、14:00-16:30。
收费标准：每期12次课，1680元，按期缴费，每期不超过3个月；预收费用存入银行监管账户。
师资团队：主讲老师毕业于中央美术学院，从事少儿美术教学十年，均持有教师资格证，无在职中小学教师。
学员作品多次在市青少年美术作品展中展出。
地址：朝阳区望京街道某某路8号二层，咨询电话：010-12345678。
""",
    """\
飞跃体育 青少年篮球训练营
2024暑期篮球训练营火热招生！面向7-14岁孩子，零基础可报，专业教练一对一纠正动作。
训练时间：7月8日—8月16日，每天上午8:30-11:30，共6周。
课程内容：运球、传球、投篮、战术配合、体能训练，营期结束举办营员对抗赛，颁发结业证书。
费用：每周980元，按周报名，可随时退费。
为什么选择我们：国家一级运动员执教，全市最大的室内篮球馆之一，教学效果看得见。
报名热线：400-800-1234
""",
    """\
码上未来少儿编程
我们的课程：Scratch图形化编程（6-9岁）、Python入门（10-14岁）、信息学奥赛基础（初中）。
每周一次课，每次90分钟，周末上午和下午均可选。
学期课程共16次，学费3200元，分两次缴纳。
孩子在这里学会逻辑思维和动手能力，许多学员在全国青少年编程大赛中获奖。
本机构已在区教育局备案，所有课程为科技类非学科类培训。
""",
    """\
家长学校 | 幼小衔接家长课堂
本期主题：如何帮助孩子做好入学准备
一、身心准备：让孩子对小学生活充满向往，培养积极情绪。
二、生活准备：早睡早起，学会整理书包和文具，自己上厕所。
三、社会准备：学会与同伴交往、遵守规则。
四、学习准备：培养倾听、阅读兴趣和专注力，不提前教授拼音、识字和算术等小学课程内容。
主讲：市教科院学前教育研究员。活动免费，请家长扫码报名。
""",
    """\
市教育局关于公布第二批校外培训机构白名单的公告
根据《关于进一步减轻义务教育阶段学生作业负担和校外培训负担的意见》要求，现将第二批审核通过的非学科类校外培训机构名单予以公布。
各机构应严格遵守以下规定：不得开展学科类培训；不得聘用在职中小学教师；不得一次性收取超过3个月或60课时的费用；不得组织学科类竞赛和考试排名；培训结束时间不得晚于20:30。
家长发现违规行为，可拨打举报电话12345。
附件：第二批白名单（共86家）。
""",
    """\
实验小学 | 校园新闻
我校举行2024年秋季学期期中质量分析会
11月15日下午，我校召开期中质量分析会。各年级教研组长分析了本次考试情况，学校不公布学生排名，只向家长反馈等级。
校长强调，要严格落实“双减”要求，控制作业总量，一二年级不布置书面家庭作业，三至六年级作业时间不超过60分钟。
课后服务时间为周一至周五15:30-17:30，内容包括作业辅导、社团活动和体育锻炼，学生自愿参加。
我校学生在区中小学生田径运动会上获得团体总分第一名。
""",
    """\
舞韵舞蹈艺术中心
中国舞考级班、拉丁舞基础班、芭蕾启蒙班（4-6岁）火热招生！
上课时间：周六、周日全天，寒暑假集训班开放报名。
考级通过率高，优秀学员多次在省级舞蹈比赛中获得金奖。
收费：按季度缴费，每季度2400元，资金存入监管账户。
本中心为区文旅局审批的艺术类培训机构，不开展任何学科类培训。
""",
    """\
市图书馆2024年暑期少儿活动安排
7月1日至8月31日，少儿阅览室每天9:00-18:00开放。
“阅读伴我成长”系列活动：绘本故事会（3-6岁，每周六上午）、小小图书管理员体验（8-12岁）、亲子共读分享会。
暑期科普讲座：每周日下午，邀请科技馆专家讲解天文、昆虫知识。
所有活动免费，请通过公众号预约。
""",
    """\
记者调查：“双减”三年，校外培训乱象仍需警惕
近日，记者走访发现，个别机构仍以“素养课”“托管班”名义开展学科类培训，有的机构宣称“签约保分”“不提分退费”。
对此，市教育局表示，将联合市场监管部门开展专项整治，对违规开展学科类培训、违规预收费的机构依法查处。
专家提醒，家长应选择经审批的正规机构，警惕“提前学”“拔苗助长”式的焦虑营销。
""",
]


@pytest.mark.parametrize("page", COMPLIANT_PAGES, ids=[p.split("\n")[0][:12] for p in COMPLIANT_PAGES])
def test_whole_pages_of_compliant_institutions_pass(page):
    """An art studio, a basketball camp, a coding school, a parents' class on school readiness, an
    education bureau's notice, a primary school's news, a dance school, a library's summer programme
    and a news report: every sentence read in its page, rules and precedents as a scan runs them."""
    from detectors.precedents import default_precedent_detector

    assert [(f.rule_id, f.text) for f in default_precedent_detector().detect(page)] == []


def test_a_page_that_names_only_non_subject_training_lowers_its_generic_holiday_classes():
    """"寒暑假集训班开放报名" names no subject: on a dance school's page (scope: page) it is not a
    finding, on a page that also names a school subject it is; the note says why."""
    line = "上课时间：周六、周日全天，寒暑假集训班开放报名。"
    assert detect("舞韵舞蹈艺术中心\n中国舞考级班、芭蕾启蒙班\n" + line) == []
    found = detect("启航教育\n初中数学、英语培优\n" + line)
    assert "off_hours.holiday_class" in {f.rule_id for f in found}
    from detectors.engine import Detector

    low = Detector(threshold=0.01).detect("舞韵舞蹈艺术中心\n" + line)
    assert any("同一页面（文本）中出现“舞蹈”" in note for f in low for note in f.explanation)


def test_a_page_context_can_only_lower(tmp_path):
    from detectors.engine import RuleError, load_lexicons, load_rules

    path = tmp_path / "r.yaml"
    path.write_text("""rules:
  - id: x.page_up
    category: off_hours_schedule
    severity: low
    title: t
    basis: {document: d, article: "", text: t}
    patterns: [{anchors: [寒假班], score: 0.5}]
    context: [{words: [数学], scope: page, delta: 0.2}]
""", encoding="utf-8")
    with pytest.raises(RuleError, match="page context can only lower"):
        load_rules(path, load_lexicons([]))
