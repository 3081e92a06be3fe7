"""Write the shipped sample dataset, data/sample/examples.jsonl, deterministically.

    python data/sample/make_sample.py [--out PATH]

About 320 instruction and chat examples from January to August 2025 (more of them in later months, as a
growing product would collect), in the layouts real exports use: alpaca rows, chat rows and ShareGPT rows,
ISO-8601 and epoch timestamps. Mostly English, a few Spanish and German. On purpose, the file also holds the
problems the pipeline must catch: exact duplicates, near duplicates and malformed rows (see bad_rows).
Everything comes from the tables below and one seeded random generator, so two runs give the same bytes.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

SEED = 2025
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2025, 8, 31, 23, 59, tzinfo=dt.UTC)
# Later months hold more rows: a row's position in the date range is u**GROWTH, u spread evenly over [0, 1).
GROWTH = 0.7
EXACT_DUPLICATES = 6
NEAR_DUPLICATES = 6
# Duplicates are made from conversations at least this long, so that word-shingle near-duplicate detection
# (5-grams, Jaccard 0.8) can see that one edited word leaves the rest unchanged.
MIN_DUPLICATE_WORDS = 45
MATH_ROWS = 76
CONVERSION_ROWS = 36

# Hand-written entries. "# <lang> <category>" starts a section. Q starts an entry with a user turn (S with a
# system turn first), I adds the alpaca input, A an assistant turn, U a further user turn, F a follow-up
# conversation that continues the previous one in the same thread. Indented lines continue the line above;
# a literal \n is a line break.
ENTRIES = r"""
# en cooking
Q How long should I boil an egg for a runny yolk?
A Lower the egg into boiling water and cook it for about 6 minutes, then move it to cold water for a
  minute so it stops cooking. The white will be set and the yolk still runny.
Q How do I keep pasta from sticking together?
A Use plenty of water (about 1 litre per 100 g of pasta), bring it to a rolling boil before adding the
  pasta, and stir during the first two minutes. Oil in the water does not help much; stirring does.
Q What is the difference between baking soda and baking powder?
A Baking soda is pure sodium bicarbonate and needs an acid in the recipe (buttermilk, yogurt, lemon
  juice) to release carbon dioxide. Baking powder already contains the acid, so it only needs moisture
  and heat. You can't swap them one for one.
Q Can I substitute butter with oil in a cake recipe?
A Usually yes. Use about three quarters of the butter's weight in a neutral oil, because butter is
  roughly 80 % fat and the rest is water. The cake will be moister but less rich.
Q Why does my rice turn out mushy?
A Most often there is too much water or the rice is stirred while cooking. Rinse the rice until the water
  runs clear, use about 1.5 parts water to 1 part long-grain rice, simmer covered without stirring, and
  let it rest for 10 minutes off the heat.
Q How do I make a basic vinaigrette?
A Whisk 3 parts oil with 1 part vinegar, add a pinch of salt and pepper and a teaspoon of mustard, which
  helps the dressing emulsify. Taste and adjust the acidity.
Q What internal temperature should cooked chicken reach?
A Chicken is safe at 74 °C (165 °F), measured in the thickest part of the meat, away from the bone.
Q How can I tell if an avocado is ripe?
A Press it gently in your palm: a ripe avocado yields slightly without feeling mushy. You can also flick
  off the small stem cap; if it is green underneath, the avocado is ready.
Q How long can cooked rice stay in the fridge?
A Cool it quickly (within an hour) and keep it covered in the fridge for up to 4 days. Reheat it until it
  is steaming hot all the way through.
Q Why should meat rest after cooking?
A While meat rests, the temperature evens out and the juices redistribute through the meat. If you cut
  it immediately, more juice runs out onto the board. Five to 10 minutes is enough for a steak; give a
  roast 15 to 20.
Q Give me a simple recipe for pancakes.
A Mix 200 g flour, 2 teaspoons baking powder, a pinch of salt and 1 tablespoon sugar. Whisk in 300 ml
  milk, 1 egg and 2 tablespoons melted butter until just combined. Cook ladlefuls in a hot greased pan
  until bubbles appear on top, then flip and cook for one more minute.
Q What does it mean to blanch vegetables?
A Blanching means boiling vegetables briefly, usually 1 to 3 minutes, and then plunging them into ice
  water. It sets the colour, softens them slightly and is the usual step before freezing.
Q How do I stop onions from making me cry?
A Use a very sharp knife so fewer cells are crushed, chill the onion for 15 minutes before cutting, and
  cut the root end last, since it holds most of the irritating compounds.
Q What can I use instead of eggs in baking?
A For each egg, try 1 tablespoon of ground flaxseed mixed with 3 tablespoons of water (let it sit for 5
  minutes), or 60 g of mashed banana or apple sauce. These work best in muffins, brownies and quick breads.
Q How do I caramelize onions?
A Slice the onions thinly and cook them slowly in butter or oil over medium-low heat, stirring now and
  then, for 30 to 45 minutes until deep golden brown. A pinch of salt draws out moisture, and a splash of
  water loosens the brown bits from the pan.
Q Is it safe to refreeze thawed meat?
A Meat thawed in the fridge can be refrozen, though it may lose some quality. Meat thawed on the counter
  or in warm water should be cooked before it is frozen again.
Q What is the best way to store fresh herbs?
A Treat soft herbs such as parsley, coriander and basil like flowers: trim the stems and stand them in a
  glass of water (basil at room temperature, the others in the fridge). Wrap woody herbs like thyme and
  rosemary in a damp paper towel and refrigerate them.
Q Why did my bread not rise?
A Common causes are old yeast, water that was too hot (above about 50 °C kills yeast), too little time
  or a cold kitchen. Test the yeast in warm water with a pinch of sugar: it should foam within 10 minutes.
# en programming
Q How do I reverse a string in Python?
A Use slicing with a step of -1:\n\ntext = "hello"\nreversed_text = text[::-1]  # "olleh"
Q What is the difference between a list and a tuple in Python?
A A list is mutable: you can add, remove and change items. A tuple cannot change once created, so it can
  be a dictionary key and tells the reader the data is fixed. Lists use square brackets, tuples parentheses.
Q How do I read a file line by line in Python?
A Open it with a context manager and iterate over the file object:\n\nwith open("data.txt",
  encoding="utf-8") as f:\n    for line in f:\n        print(line.rstrip())
Q How can I undo the last git commit but keep my changes?
A Run `git reset --soft HEAD~1`. The commit is removed and its changes stay staged; `--mixed` (the
  default) keeps them unstaged instead. Avoid this on commits you have already pushed to a shared branch.
Q What does the SQL GROUP BY clause do?
A GROUP BY collects rows that share the same values in the given columns into one group, so aggregate
  functions such as COUNT, SUM or AVG are computed per group. For example, SELECT country, COUNT(*) FROM
  customers GROUP BY country counts the customers in each country.
Q How do I remove duplicates from a list in Python while keeping the order?
A Use a dict, which keeps insertion order:\n\nitems = [3, 1, 3, 2, 1]\nunique =
  list(dict.fromkeys(items))  # [3, 1, 2]
Q What is a Python virtual environment and why use one?
A A virtual environment is an isolated directory with its own Python interpreter and installed packages.
  It keeps each project's dependencies separate, so upgrading a library for one project does not break
  another. Create one with `python -m venv .venv`.
Q How do I find which process is using port 8080 on Linux?
A Run `sudo lsof -i :8080` or `sudo ss -ltnp | grep 8080`. Both show the id and name of the process that
  is listening on that port.
Q Explain what a race condition is.
A A race condition happens when the result of a program depends on the timing of threads or processes that
  use shared data. For example, two threads that both read a counter, add one and write it back can lose
  an update. Locks, atomic operations or avoiding shared state prevent it.
Q What is the difference between == and is in Python?
A `==` compares values; `is` checks whether both names refer to the very same object. Use `is` only for
  singletons such as None: `if x is None:`.
Q How do I create a new branch in git and switch to it?
A Run `git switch -c feature-name` (or the older `git checkout -b feature-name`). The new branch starts
  from the commit you are on.
Q Write a Python function that checks whether a number is prime.
A def is_prime(n: int) -> bool:\n    if n < 2:\n        return False\n    i = 2\n    while i * i <=
  n:\n        if n % i == 0:\n            return False\n        i += 1\n    return True
Q What does HTTP status code 404 mean?
A 404 Not Found means the server was reached but has nothing at the requested URL: the page may have
  moved or never existed. It differs from 5xx errors, which mean the server itself failed.
Q How do I sort a list of dictionaries by a key in Python?
A Pass a key function to sorted:\n\npeople = [{"name": "Ana", "age": 31}, {"name": "Ben", "age":
  25}]\nby_age = sorted(people, key=lambda p: p["age"])
Q What is Big O notation?
A Big O notation describes how the running time or memory of an algorithm grows with the size of the
  input, ignoring constant factors. O(n) grows linearly, O(n log n) slightly faster and O(n^2)
  quadratically. It is usually quoted for the worst case.
Q How do I count word frequencies in a text with Python?
A Use collections.Counter:\n\nfrom collections import Counter\ncounts =
  Counter(text.lower().split())\nprint(counts.most_common(5))
Q What is the difference between a process and a thread?
A A process has its own memory space; threads run inside a process and share its memory. Threads are
  cheaper to create and can share data directly, which is also why they need synchronization.
Q How do I see the changes I have staged in git?
A Run `git diff --staged` (or `--cached`). Plain `git diff` shows only the changes that are not staged yet.
Q What is a REST API?
A A REST API exposes resources such as users or orders at URLs and lets clients act on them with standard
  HTTP methods: GET to read, POST to create, PUT or PATCH to update and DELETE to remove. Each request
  carries everything the server needs, so the server keeps no session state between requests.
Q How do I merge two dictionaries in Python 3.9 or later?
A Use the union operator: `merged = a | b`. Values from `b` win when both have the same key. To update
  `a` in place, write `a |= b`.
Q What does `chmod +x script.sh` do?
A It adds execute permission to the file, so you can run it directly with `./script.sh`.
Q How do I write a SQL query that returns the 5 most recent orders?
A Sort by the order date, newest first, and limit the result:\n\nSELECT * FROM orders\nORDER BY
  created_at DESC\nLIMIT 5;
Q What is recursion?
A Recursion is when a function calls itself to solve a smaller instance of the same problem. Every
  recursive function needs a base case that stops the calls, for example factorial(0) = 1; otherwise it
  recurses until the stack overflows.
Q How do I handle an exception in Python?
A Wrap the risky code in try/except and catch the specific exception you expect:\n\ntry:\n    value =
  int(text)\nexcept ValueError:\n    value = 0
Q What is the difference between git fetch and git pull?
A `git fetch` downloads new commits from the remote but leaves your branch unchanged. `git pull` does a
  fetch and then merges (or rebases) those commits into your current branch.
Q How can I measure how long a piece of Python code takes?
A For a quick check, call time.perf_counter() before and after the code. For small snippets the timeit
  module repeats the code many times and gives steadier numbers: `python -m timeit "sum(range(1000))"`.
# en science
Q Why is the sky blue?
A Sunlight contains all colours, and the molecules in the air scatter short wavelengths much more strongly
  than long ones (Rayleigh scattering). Blue light is scattered across the whole sky, so it reaches our
  eyes from every direction.
Q What is photosynthesis?
A Photosynthesis is the process by which plants, algae and some bacteria use light energy to turn carbon
  dioxide and water into glucose and oxygen. In plants it takes place mainly in the chloroplasts of leaves.
Q How far is the Moon from the Earth?
A On average about 384,400 km. Because its orbit is an ellipse, the distance varies between roughly
  363,000 km and 405,000 km.
Q What is the boiling point of water at sea level?
A 100 °C (212 °F) at standard atmospheric pressure. At higher altitudes the pressure is lower, so water
  boils at a lower temperature.
Q What is the difference between a virus and a bacterium?
A Bacteria are single-celled organisms that can reproduce on their own, and many can be treated with
  antibiotics. Viruses are much smaller, need a host cell to replicate and are not affected by antibiotics.
Q Why do we have seasons?
A The Earth's axis is tilted by about 23.5 degrees. As the Earth orbits the Sun, each hemisphere leans
  towards the Sun for part of the year, getting more direct sunlight and longer days (summer), and away
  from it for the rest (winter). The changing distance to the Sun matters very little.
Q What is DNA?
A DNA (deoxyribonucleic acid) is the molecule that carries the genetic instructions of living things. It
  is a double helix of two strands built from four bases, adenine, thymine, guanine and cytosine, whose
  order encodes the genes.
Q How fast does light travel?
A In a vacuum, light travels at 299,792,458 metres per second, about 300,000 km per second. Sunlight takes
  about 8 minutes and 20 seconds to reach the Earth.
Q What is the largest planet in our solar system?
A Jupiter. It is a gas giant about 143,000 km across, more than 11 times the diameter of the Earth, with
  more mass than all the other planets combined.
Q What causes thunder?
A Lightning heats the air along its path to around 30,000 °C in a fraction of a second. The air expands
  explosively, and the shock wave it makes is what we hear as thunder.
Q What is the chemical formula of table salt?
A NaCl, sodium chloride: one sodium ion for each chloride ion, arranged in a cubic crystal lattice.
Q What is an atom made of?
A An atom has a tiny nucleus of protons and neutrons surrounded by electrons. The number of protons
  defines the element; every carbon atom, for example, has 6 protons.
Q Why do some objects float in water?
A An object floats if it displaces its own weight of water before it is fully submerged (Archimedes'
  principle). In practice, objects less dense than water float and denser ones sink.
Q What is the speed of sound in air?
A About 343 metres per second in dry air at 20 °C. Sound travels faster in warmer air and much faster in
  water and solids.
Q What is the difference between weather and climate?
A Weather is the state of the atmosphere at a given time and place, such as today's rain. Climate is the
  average pattern of weather in a region over a long period, usually 30 years or more.
Q How many bones are in the adult human body?
A An adult has 206 bones. Babies are born with around 270, and some of them fuse as the body grows.
Q What is an exoplanet?
A An exoplanet is a planet that orbits a star other than the Sun. Thousands are known, most found by
  watching a star dim slightly as a planet passes in front of it (the transit method).
Q What is the greenhouse effect?
A Gases such as carbon dioxide, methane and water vapour let sunlight through but absorb part of the heat
  the Earth radiates back, which warms the lower atmosphere. Without it the Earth would be about 33 °C
  colder; adding more of these gases strengthens the effect.
Q Why does ice float on water?
A Water expands when it freezes: its molecules lock into an open hexagonal structure held together by
  hydrogen bonds. Ice is therefore about 9 % less dense than liquid water, so it floats.
Q What is the pH of pure water?
A 7 at 25 °C, which is neutral. Values below 7 are acidic and values above 7 are basic.
Q What do red blood cells do?
A Red blood cells carry oxygen from the lungs to the tissues and bring part of the carbon dioxide back.
  They owe this to haemoglobin, an iron-containing protein that also gives them their colour.
Q What is a light-year?
A A light-year is a distance, not a time: how far light travels in one year, about 9.46 trillion km.
# en travel
Q What should I pack for a weekend hiking trip?
A Layers of clothing including a waterproof jacket, sturdy broken-in boots, a map and a charged phone, at
  least 2 litres of water per person per day, snacks, sun protection, a small first-aid kit and a head
  torch. Check the weather forecast before you leave.
Q How early should I arrive at the airport for an international flight?
A Plan to be at the airport about 3 hours before an international departure and 2 hours before a domestic
  one. Check-in and bag drop usually close 45 to 60 minutes before departure.
Q How can I avoid jet lag?
A Shift your sleep by an hour a day for a few days before you travel and drink enough water. On arrival,
  get daylight in the morning and stay awake until a normal local bedtime; avoid long naps on the first day.
Q What is the best way to carry money when travelling abroad?
A Carry a card without foreign transaction fees, a backup card kept separately and a little local cash for
  taxis and small shops. When a card machine asks, pay in the local currency to avoid a poor exchange rate.
Q How do I find cheap flights?
A Be flexible with dates and airports, compare prices on a flight search engine and set fare alerts.
  Midweek flights are often cheaper, and booking a few months ahead usually beats the last minute.
Q What are some tips for travelling with carry-on luggage only?
A Pack versatile clothes in two or three colours that match, roll them, and wear your bulkiest shoes and
  jacket on the plane. Keep liquids in containers of 100 ml or less in a clear bag, and plan one laundry
  stop on longer trips.
Q Is tap water safe to drink in Germany?
A Yes. Tap water in Germany is strictly regulated and safe to drink. In restaurants bottled water is the
  norm, so ask explicitly if you want tap water.
Q What is the best time of year to visit Japan?
A Spring (late March to early April) for the cherry blossoms and autumn (October to November) for the
  colourful leaves, both with mild weather. Summer is hot and humid, and June to mid-July is the rainy
  season in most regions.
Q What documents do I need to rent a car abroad?
A Usually your driving licence, your passport and a credit card in the driver's name for the deposit. Some
  countries also require an International Driving Permit, so check before you go.
Q How can I stay safe from pickpockets in big cities?
A Keep your wallet and phone in a front pocket or a zipped bag worn in front of you, take extra care in
  crowded places such as metro stations and markets, and don't leave your phone on café tables.
Q Should I buy travel insurance?
A For most international trips it is worth it. Medical care abroad can be very expensive, and a good
  policy also covers cancellation, lost luggage and emergency transport home. Check what your credit card
  already includes.
Q How do I get from Heathrow Airport to central London?
A The Elizabeth line and the Piccadilly line are the cheapest options, taking roughly 35 to 55 minutes.
  The Heathrow Express to Paddington is the fastest, about 15 minutes, but costs more. Taxis cost the most.
Q What is a good plan for three days in Rome?
A Day 1: the Colosseum, the Roman Forum and the Palatine Hill. Day 2: the Vatican Museums, the Sistine
  Chapel and St Peter's Basilica (book tickets in advance). Day 3: the Pantheon, the Trevi Fountain,
  Piazza Navona and an evening in Trastevere.
Q How much should I tip in restaurants in the United States?
A 15 to 20 percent of the bill before tax is standard for table service, more for exceptional service.
  Check the bill first: some restaurants already add a service charge for large groups.
Q How do I get around Paris by public transport?
A The metro is the quickest way. Buy tickets from station machines or the RATP app, validate them at the
  gates and keep them until you exit. A weekly Navigo pass is good value if you stay several days.
# en writing
Q Correct the grammar in this sentence.
I Me and him goes to the store every weekends.
A He and I go to the store every weekend.
Q Rewrite the sentence in the passive voice.
I The committee approved the new budget.
A The new budget was approved by the committee.
Q Summarize the following paragraph in one sentence.
I The city council met on Tuesday to discuss the proposed bike lanes on Main Street. Residents spoke both
  for and against the plan, citing safety, parking and business concerns. After three hours of debate,
  the council voted to run a six-month trial.
A After a long debate with residents, the city council voted to test bike lanes on Main Street for six
  months.
Q Give three synonyms for the word "happy".
A Joyful, cheerful and content.
Q Write a short, polite email declining a meeting invitation.
A Subject: Re: Project sync on Thursday\n\nHi Maria,\n\nThank you for the invitation. Unfortunately I
  can't join on Thursday because of a prior commitment. Could you share the notes afterwards? I'm happy to
  follow up on anything that needs my input.\n\nBest regards,\nTom
Q Write a haiku about autumn.
A Crisp leaves drift and fall\nthe maple lets go of red\ncool wind carries them
Q Turn these notes into a single clear sentence.
I meeting moved - friday 3pm - room 204 - bring laptops
A The meeting has moved to Friday at 3 pm in room 204; please bring your laptops.
Q What is the difference between "affect" and "effect"?
A "Affect" is usually a verb meaning to influence ("The rain affected the match"). "Effect" is usually a
  noun meaning a result ("The rain had a big effect on the match").
Q Suggest a title for a blog post about saving money on groceries.
A "Eat Well, Spend Less: 10 Simple Ways to Cut Your Grocery Bill"
Q Make this sentence more concise.
I Due to the fact that we are currently in the process of updating our system, there may be some delays.
A Because we are updating our system, there may be delays.
Q Write an opening line for a mystery novel.
A The lighthouse had been dark for eleven years, so nobody in Port Avery could explain the light that
  appeared in its window on the night Edith Crane disappeared.
Q Rewrite this message in formal English.
I hey, can u send me the report asap? thx
A Hello, could you please send me the report as soon as possible? Thank you.
Q Explain what a metaphor is, with an example.
A A metaphor describes something by saying it is something else, without "like" or "as". For example,
  "Time is a thief" suggests that time steals moments from us.
Q Write a product description for a stainless steel water bottle.
A Keep drinks cold for 24 hours or hot for 12 with this double-walled stainless steel bottle. It holds
  750 ml, fits most cup holders and has a leak-proof lid. Tough enough for the trail, sleek enough for the
  office.
Q Proofread this text and fix the spelling mistakes.
I We recieved you're message and will definately respond untill friday.
A We received your message and will definitely respond by Friday.
Q Classify the sentiment of this review as positive, negative or neutral.
I The delivery was quick, but the headphones stopped working after two days.
A Negative. The quick delivery is a plus, but the product failing after two days is the main point.
Q Write a thank-you note to a colleague who helped with a project.
A Hi Sam, thank you so much for your help with the quarterly report. Your analysis of the sales data made
  everything clearer, and I really appreciated you staying late to finish it. I owe you a coffee!
Q What is the plural of "cactus"?
A Both "cacti" and "cactuses" are correct; "cacti" is more common in formal and scientific writing.
Q Rewrite this sentence so it sounds more confident.
I I think maybe we could possibly try to finish the project by Friday.
A We will finish the project by Friday.
Q List four tips for writing a good cover letter.
A 1. Address it to a named person when you can.\n2. Open with the role and why it interests you.\n3. Show
  two or three concrete achievements that match the job.\n4. Keep it to one page and end with a clear
  next step.
# en geography
Q What is the longest river in the world?
A The Nile, at about 6,650 km, is usually listed as the longest, though some measurements put the Amazon
  slightly ahead. The Amazon carries by far the most water.
Q What is the highest mountain in the world?
A Mount Everest, on the border between Nepal and China, at 8,849 metres above sea level.
Q What is the largest desert in the world?
A Antarctica, if you count cold deserts, since it gets very little precipitation. The largest hot desert
  is the Sahara in North Africa, about 9 million square kilometres.
Q How many continents are there?
A Seven by the most common convention: Africa, Antarctica, Asia, Australia (Oceania), Europe, North
  America and South America.
Q What is the smallest country in the world?
A Vatican City, with an area of about 0.44 square kilometres, surrounded by the city of Rome.
Q Which ocean is the largest?
A The Pacific Ocean. It covers about a third of the Earth's surface, more than all the land combined.
Q What is the deepest lake in the world?
A Lake Baikal in Siberia, with a maximum depth of about 1,640 metres. It also holds around a fifth of the
  world's unfrozen fresh surface water.
Q Which country has the largest population?
A India overtook China in 2023 and now has the largest population, more than 1.4 billion people.
# en programming
Q I'm getting "ModuleNotFoundError: No module named 'requests'". What does it mean?
A Python can't find the requests package in the environment you are running. Install it with
  `python -m pip install requests`, using the same interpreter that runs your script.
U I installed it but still get the error.
A Then the script probably runs with a different Python. Compare `python -c "import sys;
  print(sys.executable)"` with the interpreter your editor uses. If you use a virtual environment,
  activate it first, then install and run from it.
S You are a concise assistant for data engineers.
Q How do I read a CSV file with pandas?
A import pandas as pd\n\ndf = pd.read_csv("data.csv")\nprint(df.head())
U And only some of the columns?
A Pass usecols: `pd.read_csv("data.csv", usecols=["id", "price"])`. It is also faster and uses less
  memory, because the other columns are never parsed.
Q What's the difference between git merge and git rebase?
A Both bring changes from one branch into another. Merge keeps both histories and adds a merge commit.
  Rebase replays your commits on top of the other branch, giving a straight history but rewriting your
  commits.
U Which should I use?
A A common rule: rebase your own local feature branch to keep it up to date, and merge when integrating
  into a shared branch. Never rebase commits that others have already pulled.
U How do I abort a rebase that went wrong?
A Run `git rebase --abort`. It stops the rebase and puts your branch back where it was before you started.
Q How do I create a virtual environment in Python?
A Run `python -m venv .venv` in your project folder, then activate it with `source .venv/bin/activate`
  on Linux and macOS, or `.venv\Scripts\activate` on Windows.
F How do I save the installed packages to a file?
A Run `pip freeze > requirements.txt` with the environment active. Someone else can recreate it with
  `pip install -r requirements.txt`.
# en travel
Q I have a 10-hour layover in Amsterdam. Is it worth leaving the airport?
A Yes, if your passport lets you enter the Schengen area. Trains from Schiphol reach Amsterdam Centraal in
  about 15 to 20 minutes. Be back at the airport about 3 hours before your next flight, which leaves you
  roughly 5 hours in the city.
U What could I see in 5 hours?
A Walk from Centraal through the canal ring to the Jordaan, take a one-hour canal cruise, and visit either
  the Rijksmuseum or the Anne Frank House (book Anne Frank tickets online in advance; they sell out).
Q What's the weather like in Lisbon in March?
A Mild and changeable: daytime highs around 17 to 19 °C, cool evenings around 10 °C and some rainy days.
  Pack layers and a light rain jacket.
U Is it a good time for the beaches?
A It's nice for walks along the coast, but the Atlantic is still cold, around 15 °C, so few people swim.
  For beach weather, go between June and September.
Q I'm planning a trip to Iceland in winter. Can I see the northern lights?
A Yes: from September to April you have a good chance on clear, dark nights. Get away from city lights,
  check the aurora forecast of the Icelandic Met Office and be patient; it is never guaranteed.
F Do I need a 4x4 to drive the Ring Road in winter?
A It is strongly recommended. Storms, ice and snow are common, and roads in the north and east can close.
  Check road.is and the warnings on safetravel.is every day before you drive.
# en cooking
Q I want to bake bread but I don't have a stand mixer. Is that a problem?
A Not at all. Most bread doughs can be kneaded by hand: about 10 minutes of pushing, folding and turning
  until the dough is smooth and springs back when you poke it. Or try a no-knead recipe, which relies on
  a long, slow rise instead.
U How long does a no-knead dough need to rise?
A Typically 12 to 18 hours at room temperature, until it has doubled and is covered in bubbles. Then shape
  it, let it rest for another 1 to 2 hours and bake it in a preheated covered pot at about 230 °C.
Q My sauce is too salty. Can I fix it?
A Dilute it if you can: add more of the unsalted base (stock, tomatoes, cream or water) and simmer briefly.
  A splash of lemon juice or a pinch of sugar can balance the taste, though neither removes salt.
U Does adding a potato really work?
A Not much. A potato soaks up some liquid, and the salt in it, but the effect is small. Diluting the sauce
  works far better.
Q How do I start a sourdough starter?
A Mix equal weights of flour and water, for example 50 g each, in a jar, cover it loosely and keep it at
  room temperature. Every day, discard half and feed it fresh flour and water. After 5 to 10 days it
  should rise predictably and smell pleasantly sour.
F My starter has a layer of grey liquid on top. Is it ruined?
A No. That liquid, often called hooch, is alcohol the yeast makes when the starter is hungry. Pour it off
  or stir it in, then feed the starter more often.
# en math
Q What's the formula for compound interest?
A A = P(1 + r/n)^(nt), where P is the starting amount, r the yearly interest rate as a decimal, n how many
  times per year interest is added and t the number of years.
U If I invest 1000 at 5% compounded yearly, how much do I have after 3 years?
A A = 1000 × 1.05^3 = 1000 × 1.157625 ≈ 1157.63, so about 1157.63 after three years.
Q How do I calculate a 15% tip on a bill of 64 dollars?
A 10% of 64 is 6.40, and 5% is half of that, 3.20. Together: 6.40 + 3.20 = 9.60 dollars.
U And the total with the tip?
A 64 + 9.60 = 73.60 dollars.
Q What is the Pythagorean theorem?
A In a right triangle, the square of the hypotenuse equals the sum of the squares of the other two sides:
  a² + b² = c².
F So if the two shorter sides are 6 and 8, how long is the hypotenuse?
A c² = 6² + 8² = 36 + 64 = 100, so c = 10.
# en science
S You are a patient science tutor for high-school students.
Q Why don't we feel the Earth spinning?
A Because we move with it at a steady speed. You only feel changes in motion, like when a car brakes. The
  Earth turns smoothly, so everything on it, including the air, moves along with us.
U But isn't it spinning really fast?
A At the equator the surface moves at about 1,670 km/h, but one turn takes a whole day, so the direction
  changes very gently. The resulting acceleration is tiny compared with gravity, far too small to notice.
Q How do vaccines work?
A A vaccine shows your immune system a harmless piece or weakened form of a germ. The immune system learns
  to recognise it and keeps memory cells, so if you meet the real germ later it can respond quickly.
U Why do some vaccines need boosters?
A For some vaccines the immune memory fades over time, or the germ changes, as flu viruses do every year.
  A booster reminds the immune system and restores strong protection.
# en geography
Q Which countries does the Danube flow through?
A Ten countries: Germany, Austria, Slovakia, Hungary, Croatia, Serbia, Romania, Bulgaria, Moldova and
  Ukraine, before it reaches the Black Sea.
U Which capitals are on it?
A Four capitals lie on the Danube: Vienna, Bratislava, Budapest and Belgrade.
# en writing
Q Can you help me write a toast for my sister's wedding?
A Of course! Tell me a little about her and her partner: how they met, a funny or touching memory, and the
  tone you want, sentimental or light-hearted.
U They met at a climbing gym and she's the most stubborn person I know. Light-hearted, please.
A Here's a start: "Anyone who knows my sister knows she never gives up, whether it's an argument, a
  crossword or a climbing route. So when she met Alex at the climbing gym, he didn't stand a chance. Alex,
  thank you for being the belay partner she can always count on. Please raise your glasses to a lifetime
  of reaching new heights together!"
S You are an assistant that answers in plain, friendly English.
Q What does "RSVP" mean on an invitation?
A It comes from the French "répondez s'il vous plaît", meaning "please reply". The host is asking you to
  say whether you will come, usually by a given date.
# es cooking
Q ¿Cuánto tiempo se cuece un huevo duro?
A Unos 10 minutos desde que el agua vuelve a hervir. Después, pásalo a agua fría para pelarlo con
  facilidad.
Q ¿Cómo hago una tortilla de patatas?
A Corta 4 patatas en láminas finas y fríelas a fuego lento en abundante aceite con una cebolla picada,
  unos 20 minutos. Escúrrelas, mézclalas con 6 huevos batidos y sal, y cuaja la tortilla en una sartén a
  fuego medio, dándole la vuelta con un plato.
# es geography
Q ¿Cuál es el río más largo de la península ibérica?
A El Tajo, con unos 1.007 km; nace en la sierra de Albarracín y desemboca en el Atlántico en Lisboa. El
  río más largo que discurre solo por España es el Ebro.
Q ¿Cuál es la capital de Argentina?
A La capital de Argentina es Buenos Aires.
# es programming
Q ¿Cómo puedo ver qué versión de Python tengo instalada?
A Ejecuta `python --version` (o `python3 --version`) en la terminal.
# es travel
Q ¿Qué documento necesito para viajar de España a Francia?
A Si eres ciudadano de la UE, basta con el DNI o el pasaporte en vigor. Ambos países forman parte del
  espacio Schengen, pero conviene llevar siempre un documento de identidad.
# es science
Q ¿Por qué el cielo es azul?
A Porque las moléculas del aire dispersan mucho más la luz azul, de longitud de onda corta, que la roja.
  Esa luz dispersada nos llega desde todas las direcciones del cielo.
# de cooking
Q Wie lange muss ich Spaghetti kochen?
A Meist 8 bis 10 Minuten in reichlich kochendem Salzwasser; die genaue Zeit steht auf der Packung.
  Probier kurz vorher, ob sie noch bissfest (al dente) sind.
Q Wie bewahre ich frisches Brot am besten auf?
A In einem Brotkasten oder Leinenbeutel bei Raumtemperatur. Im Kühlschrank wird Brot schneller altbacken;
  für länger friert man es am besten in Scheiben ein.
# de geography
Q Was ist der höchste Berg Deutschlands?
A Die Zugspitze in den Bayerischen Alpen mit 2.962 Metern.
# de programming
Q Wie erstelle ich in Git einen neuen Branch?
A Mit `git switch -c name-des-branches` erstellst du den Branch und wechselst direkt dorthin.
# de travel
Q Brauche ich in Österreich eine Vignette?
A Ja, für Autobahnen und Schnellstraßen brauchst du eine Vignette, als Klebevignette oder digital. Ohne
  gültige Vignette drohen hohe Strafen.
# de science
Q Warum schwimmt Eis auf Wasser?
A Beim Gefrieren ordnen sich die Wassermoleküle in einem offenen Kristallgitter an. Eis hat dadurch eine
  geringere Dichte als flüssiges Wasser und schwimmt oben.
# de writing
Q Formuliere diesen Satz höflicher.
I Schick mir sofort die Unterlagen.
A Könnten Sie mir bitte die Unterlagen so bald wie möglich schicken?
"""

# country (with its article where English uses one), capital, continent
CAPITALS = """France|Paris|Europe;Germany|Berlin|Europe;Italy|Rome|Europe;Spain|Madrid|Europe
Portugal|Lisbon|Europe;the Netherlands|Amsterdam|Europe;Belgium|Brussels|Europe
Austria|Vienna|Europe;Switzerland|Bern|Europe;Poland|Warsaw|Europe;Sweden|Stockholm|Europe
Norway|Oslo|Europe;Finland|Helsinki|Europe;Denmark|Copenhagen|Europe;Ireland|Dublin|Europe
Greece|Athens|Europe;Hungary|Budapest|Europe;the Czech Republic|Prague|Europe;Japan|Tokyo|Asia
South Korea|Seoul|Asia;China|Beijing|Asia;India|New Delhi|Asia;Thailand|Bangkok|Asia
Vietnam|Hanoi|Asia;the Philippines|Manila|Asia;Pakistan|Islamabad|Asia;Saudi Arabia|Riyadh|Asia
Egypt|Cairo|Africa;Kenya|Nairobi|Africa;Nigeria|Abuja|Africa;Morocco|Rabat|Africa
Ghana|Accra|Africa;Ethiopia|Addis Ababa|Africa;Canada|Ottawa|North America
Mexico|Mexico City|North America;the United States|Washington, D.C.|North America
Brazil|Brasília|South America;Chile|Santiago|South America;Peru|Lima|South America
Colombia|Bogotá|South America;Australia|Canberra|Oceania;New Zealand|Wellington|Oceania"""
CAPITAL_QUESTIONS = (
    "What is the capital of {country}?",
    "Which city is the capital of {country}?",
    "Name the capital city of {country}.",
    "Tell me the capital of {country}.",
)
CAPITAL_ANSWERS = (
    "The capital of {country} is {capital}.",
    "{capital} is the capital of {country}.",
    "{capital}. It is the capital of {country}, in {continent}.",
)
NEAR_DUPLICATE_EDITS = (
    lambda text: text.rstrip("?.!"),
    lambda text: text + " Thanks!",
    lambda text: "Hi, " + text[0].lower() + text[1:],
    lambda text: text + " Thank you.",
    lambda text: "Quick question: " + text[0].lower() + text[1:],
    lambda text: text.replace("?", "??", 1) if "?" in text else text + "!",
)


def parse_entries(text: str) -> list[dict[str, Any]]:
    """Entries of the ENTRIES table: {lang, category, turns: [[role, text]], thread}."""
    entries: list[dict[str, Any]] = []
    lang = category = ""
    roles = {"S": "system", "Q": "user", "U": "user", "A": "assistant", "I": "input", "F": "user"}
    for line in text.strip("\n").split("\n"):
        if line.startswith("  "):
            entries[-1]["turns"][-1][1] += " " + line.strip()
            continue
        tag, body = line.split(" ", 1)
        if tag == "#":
            lang, category = body.split()
            continue
        current = entries[-1] if entries else None
        only_system = current is not None and [r for r, _ in current["turns"]] == ["system"]
        if tag == "S" or (tag == "Q" and not only_system):
            entries.append({"lang": lang, "category": category, "turns": [], "thread": None})
        elif tag == "F":
            assert current is not None, "F needs an entry to follow up on"
            current["thread"] = (
                current["thread"] or f"thread-{len({e['thread'] for e in entries} - {None}) + 1:03d}"
            )
            entries.append(copy.deepcopy(current))
        entries[-1]["turns"].append([roles[tag], body])
    for entry in entries:
        for turn in entry["turns"]:
            turn[1] = turn[1].replace("\\n", "\n")
    return entries


def capital_entries(rng: random.Random) -> list[dict[str, Any]]:
    entries = []
    for record in CAPITALS.replace("\n", ";").split(";"):
        country, capital, continent = record.split("|")
        question = rng.choice(CAPITAL_QUESTIONS).format(country=country)
        answer = rng.choice(CAPITAL_ANSWERS).format(country=country, capital=capital, continent=continent)
        entries.append(_qa("geography", question, answer))
    return entries


def math_entries(rng: random.Random, count: int) -> list[dict[str, Any]]:
    def multiply() -> tuple[str, str]:
        a, b = rng.randint(12, 99), rng.randint(3, 49)
        return rng.choice((f"What is {a} × {b}?", f"Calculate {a} * {b}.")), f"{a} × {b} = {a * b}."

    def percent() -> tuple[str, str]:
        p, n = rng.choice((5, 10, 15, 20, 25, 30, 40, 75)), 20 * rng.randint(2, 60)
        return f"What is {p}% of {n}?", f"{p}% of {n} is {p * n // 100} ({p}/100 × {n})."

    def speed() -> tuple[str, str]:
        v, h = 10 * rng.randint(4, 15), rng.randint(2, 6)
        question = f"A train travels {v * h} km in {h} hours. What is its average speed?"
        return question, f"Average speed = distance ÷ time = {v * h} km ÷ {h} h = {v} km/h."

    def area() -> tuple[str, str]:
        w, length = rng.randint(2, 20), rng.randint(21, 60)
        question = f"What is the area of a rectangle that is {w} m wide and {length} m long?"
        return question, f"Area = width × length = {w} m × {length} m = {w * length} m²."

    def equation() -> tuple[str, str]:
        a, x, b = rng.randint(2, 9), rng.randint(-10, 20), rng.randint(1, 40)
        answer = f"Subtract {b} from both sides: {a}x = {a * x}. Divide both sides by {a}: x = {x}."
        return f"Solve for x: {a}x + {b} = {a * x + b}.", answer

    def average() -> tuple[str, str]:
        values = [rng.randint(1, 100) for _ in range(rng.randint(3, 6))]
        mean = round(sum(values) / len(values), 2)
        listed, added = ", ".join(map(str, values)), " + ".join(map(str, values))
        sign = "=" if mean == sum(values) / len(values) else "≈"
        answer = f"{added} = {sum(values)}, and {sum(values)} ÷ {len(values)} {sign} {mean:g}."
        return f"What is the average of {listed}?", answer

    makers = (multiply, percent, speed, area, equation, average)
    return _unique_entries(lambda: _qa("math", *rng.choice(makers)()), count)


def conversion_entries(rng: random.Random, count: int) -> list[dict[str, Any]]:
    def temperature() -> dict[str, Any]:
        c = rng.randint(-30, 250)
        answer = f"{c} °C = {c * 9 / 5 + 32:g} °F (× 9/5, then + 32)."
        return _qa("science", f"Convert {c} °C to Fahrenheit.", answer)

    def distance() -> dict[str, Any]:
        km = rng.choice((3, 5, 10, 15, 21, 42, 50, 80, 100, 160, 250, 400))
        return _qa("science", f"How many miles is {km} km?", f"{km} km is about {km * 0.621371:.1f} miles.")

    def weight() -> dict[str, Any]:
        kg = rng.randint(1, 120)
        return _qa("science", f"How many pounds are {kg} kg?", f"{kg} kg is about {kg * 2.20462:.1f} lb.")

    def cups() -> dict[str, Any]:
        n = rng.choice((0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4))
        question = f"How many millilitres are in {n:g} US cups?"
        return _qa("cooking", question, f"{n:g} US cups is about {n * 236.6:.0f} ml (1 cup ≈ 236.6 ml).")

    makers = (temperature, distance, weight, cups)
    return _unique_entries(lambda: rng.choice(makers)(), count)


def _qa(category: str, question: str, answer: str) -> dict[str, Any]:
    return {
        "lang": "en",
        "category": category,
        "turns": [["user", question], ["assistant", answer]],
        "thread": None,
    }


def _unique_entries(make: Callable[[], dict[str, Any]], count: int) -> list[dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    while len(entries) < count:
        entry = make()
        entries.setdefault(entry["turns"][0][1], entry)
    return list(entries.values())


def _long_single_turn(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in entries
        if e["lang"] == "en"
        and len(e["turns"]) == 2
        and sum(len(text.split()) for _, text in e["turns"]) >= MIN_DUPLICATE_WORDS
        and not e["thread"]
    ]


def bad_rows(rng: random.Random) -> list[dict[str, Any]]:
    """Rows that must end up rejected, each with the reason the pipeline should give."""
    log = "\n".join(
        f"2025-05-14T03:{i // 60:02d}:{i % 60:02d}Z api-{rng.randint(1, 4)} "
        + rng.choice(
            (
                "INFO GET /v1/orders 200 in 41 ms",
                "INFO POST /v1/carts 201 in 67 ms",
                "WARN POST /v1/orders took 2315 ms (upstream=payments)",
                "ERROR POST /v1/orders failed: upstream payments timed out after 5000 ms",
            )
        )
        for i in range(160)
    )
    summary = (
        "Most requests succeed quickly; the warnings and errors all come from slow or timed-out calls to "
        "the payments service."
    )
    return [
        {"bad": "truncated", "instruction": "Name three primary colours.", "output": "Red, yellow and blue."},
        {"bad": "array", "line": json.dumps(["What is 2 + 2?", "4"])},
        {"bad": "missing output", "instruction": "Write a limerick about a cat."},
        {
            "bad": "empty instruction",
            "instruction": "  ",
            "output": "Sure, here is a summary of the article.",
        },
        {"bad": "int instruction", "instruction": 1042, "output": "That is an order number, not a question."},
        {
            "bad": "bad timestamp",
            "instruction": "What is 7 squared?",
            "output": "49.",
            "created_at": "yesterday",
        },
        {"bad": "oversize", "instruction": "Summarize this server log.", "input": log, "output": summary},
        {
            "bad": "bad role",
            "messages": [
                {"role": "user", "content": "Tell me a story about a dragon."},
                {"role": "narrator", "content": "Once upon a time, a dragon guarded a library."},
            ],
        },
    ]


def render(item: dict[str, Any], row_id: str | None, when: dt.datetime, rng: random.Random) -> str:
    """One JSONL line in the layout the item's source would export."""
    if item.get("bad") == "array":
        return item["line"]
    row: dict[str, Any] = {"id": row_id} if row_id else {}
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    style = rng.random()
    if style < 0.05:
        row["created_at"] = int(when.timestamp())
    elif style < 0.07:
        row["created_at"] = int(when.timestamp()) * 1000
    elif style < 0.15:
        row["created_at"] = when.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    elif style < 0.2:
        row["timestamp"] = stamp
    else:
        row["created_at"] = stamp
    if "bad" in item:
        row.update({k: v for k, v in item.items() if k != "bad"})
        line = json.dumps(row, ensure_ascii=False)
        return line[: len(line) // 2] if item["bad"] == "truncated" else line
    row.update(category=item["category"], lang=item["lang"])
    if item["thread"]:
        row["group_id"] = item["thread"]
    turns = [t for t in item["turns"] if t[0] != "input"]
    extra = next((t[1] for t in item["turns"] if t[0] == "input"), None)
    layout = rng.random()
    if extra is not None or item.get("generated") or (len(turns) <= 3 and layout < 0.45):
        row["source"] = "templates" if item.get("generated") else "docs-team"
        if turns[0][0] == "system":
            row["system"] = turns[0][1]
        row.update(instruction=turns[-2][1], input=extra or "", output=turns[-1][1])
    elif layout < 0.8:
        row["source"] = "support-chat"
        row["messages"] = [{"role": role, "content": text} for role, text in turns]
    else:
        row["source"] = "community-sharegpt"
        aliases = {"user": "human", "assistant": "gpt", "system": "system"}
        row["conversations"] = [{"from": aliases[role], "value": text} for role, text in turns]
    return json.dumps(row, ensure_ascii=False)


def build_lines(seed: int = SEED) -> list[str]:
    """Every line of the sample file, in time order."""
    rng = random.Random(seed)
    entries = parse_entries(ENTRIES)
    generated = capital_entries(rng) + math_entries(rng, MATH_ROWS) + conversion_entries(rng, CONVERSION_ROWS)
    for entry in generated:
        entry["generated"] = True
    entries += generated
    sources = rng.sample(_long_single_turn(entries), EXACT_DUPLICATES + NEAR_DUPLICATES)
    items: list[dict[str, Any]] = entries + [copy.deepcopy(e) for e in sources[:EXACT_DUPLICATES]]
    for edit, source in zip(NEAR_DUPLICATE_EDITS, sources[EXACT_DUPLICATES:], strict=True):
        near = copy.deepcopy(source)
        near["turns"][0][1] = edit(near["turns"][0][1])
        items.append(near)
    items += bad_rows(rng)
    rng.shuffle(items)
    span = (END - START).total_seconds()
    # stratified draws: one per equal slice of [0, 1), so the monthly counts grow smoothly
    slices = [(k + rng.random()) / len(items) for k in range(len(items))]
    times = [START + dt.timedelta(seconds=int(span * u**GROWTH)) for u in slices]
    # a follow-up conversation comes after the conversation it continues
    for thread in sorted({i["thread"] for i in items if i.get("thread")}):
        positions = [n for n, i in enumerate(items) if i.get("thread") == thread]
        ordered = sorted((items[n] for n in positions), key=lambda i: len(i["turns"]))
        for n, item in zip(positions, ordered, strict=True):
            items[n] = item
    lines = []
    for number, (item, when) in enumerate(zip(items, times, strict=True), start=1):
        # a few rows come from a source that has no ids of its own
        row_id = None if rng.random() < 0.02 else f"ex-{number:04d}"
        lines.append(render(item, row_id, when, rng))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("examples.jsonl"))
    args = parser.parse_args()
    lines = build_lines()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    print(f"wrote {len(lines)} rows to {args.out}")


if __name__ == "__main__":
    main()
